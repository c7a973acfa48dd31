using System.Numerics;

namespace Consort.Weights.Engine;

/// <summary>Dot products of float rows accumulated in double (angles near 0 need the precision), vectorized.</summary>
public static class VectorMath
{
    /// <summary>Σ a_j b_j in double.</summary>
    public static double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length) throw new ArgumentException("lengths differ");
        int j = 0;
        var acc0 = Vector<double>.Zero; var acc1 = Vector<double>.Zero;
        if (Vector.IsHardwareAccelerated)
        {
            int vc = Vector<float>.Count;
            for (; j <= a.Length - vc; j += vc)
            {
                Vector.Widen(new Vector<float>(a.Slice(j, vc)), out var a0, out var a1);
                Vector.Widen(new Vector<float>(b.Slice(j, vc)), out var b0, out var b1);
                acc0 += a0 * b0;
                acc1 += a1 * b1;
            }
        }
        double sum = Vector.Sum(acc0 + acc1);
        for (; j < a.Length; j++) sum += (double)a[j] * b[j];
        return sum;
    }

    /// <summary>Σ a_j² in double.</summary>
    public static double SumSquares(ReadOnlySpan<float> a) => Dot(a, a);

    /// <summary>(Σ a_j b_j, Σ a_j², Σ b_j²) in double, in one pass over both rows (an angle needs all three).</summary>
    public static (double Ab, double Aa, double Bb) Moments(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length) throw new ArgumentException("lengths differ");
        int j = 0;
        Vector<double> ab = Vector<double>.Zero, aa = Vector<double>.Zero, bb = Vector<double>.Zero;
        if (Vector.IsHardwareAccelerated)
        {
            int vc = Vector<float>.Count;
            for (; j <= a.Length - vc; j += vc)
            {
                Vector.Widen(new Vector<float>(a.Slice(j, vc)), out var a0, out var a1);
                Vector.Widen(new Vector<float>(b.Slice(j, vc)), out var b0, out var b1);
                ab += a0 * b0 + a1 * b1;
                aa += a0 * a0 + a1 * a1;
                bb += b0 * b0 + b1 * b1;
            }
        }
        double sab = Vector.Sum(ab), saa = Vector.Sum(aa), sbb = Vector.Sum(bb);
        for (; j < a.Length; j++) { sab += (double)a[j] * b[j]; saa += (double)a[j] * a[j]; sbb += (double)b[j] * b[j]; }
        return (sab, saa, sbb);
    }
}
