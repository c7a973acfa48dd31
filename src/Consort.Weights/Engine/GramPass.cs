using System.Numerics.Tensors;

namespace Consort.Weights.Engine;

/// <summary>
/// Methods whose result is a linear combination of the inputs (spherical means: Karcher, multi-SLERP): one pass
/// gathers the Gram matrix of the vectors (the inputs, or their offsets from a base), the method works out its
/// coefficients from it in double precision, and a second pass writes Σ c_i v_i (+ base). No vector is held whole.
/// </summary>
public static class GramPass
{
    /// <summary>
    /// G_ij = ⟨v_i, v_j⟩ over the whole tensor, v_i = input <paramref name="sources"/>[i] minus the base
    /// (<paramref name="baseSource"/> &gt;= 0) or as it is.
    /// </summary>
    public static double[,] Compute(TensorJob job, int[] sources, int baseSource = -1)
    {
        int k = sources.Length;
        int[] read = baseSource >= 0 ? [.. sources, baseSource] : sources;
        var g = new double[k, k];
        BlockPasses.Scan(job, read, 1, () => new double[k * k], (b, part) =>
        {
            if (baseSource >= 0)
                for (int i = 0; i < k; i++) TensorPrimitives.Subtract(b.In(i), b.In(k), b.In(i));
            if (k == 2) (part[1], part[0], part[3]) = VectorMath.Moments(b.In(0), b.In(1)); // a pair's three sums in one pass
            else
                for (int i = 0; i < k; i++)
                    for (int j = i; j < k; j++) part[i * k + j] = VectorMath.Dot(b.In(i), b.In(j));
        }, part =>
        {
            for (int i = 0; i < k; i++)
                for (int j = i; j < k; j++) { g[i, j] += part[i * k + j]; g[j, i] = g[i, j]; }
        });
        return g;
    }

    /// <summary>Writes Σ c_i v_i, plus the base when the vectors are offsets from one (the same v_i as <see cref="Compute"/>).</summary>
    public static void Emit(TensorJob job, int[] sources, double[] coefficients, int baseSource = -1)
    {
        int k = sources.Length;
        int[] read = baseSource >= 0 ? [.. sources, baseSource] : sources;
        var c = coefficients.Select(x => (float)x).ToArray();
        BlockPasses.Map(job, read, 1, b =>
        {
            var o = b.Out;
            if (baseSource >= 0)
                for (int i = 0; i < k; i++) TensorPrimitives.Subtract(b.In(i), b.In(k), b.In(i)); // offsets, as the Gram pass saw them
            TensorPrimitives.Multiply(b.In(0), c[0], o);
            for (int i = 1; i < k; i++) TensorPrimitives.MultiplyAdd(b.In(i), c[i], o, o);
            if (baseSource >= 0) TensorPrimitives.Add(o, b.In(k), o);
        });
    }

    /// <summary>cᵀ G d.</summary>
    public static double Inner(double[,] g, double[] c, double[] d)
    {
        double s = 0;
        for (int i = 0; i < c.Length; i++)
            for (int j = 0; j < d.Length; j++) s += c[i] * g[i, j] * d[j];
        return s;
    }
}
