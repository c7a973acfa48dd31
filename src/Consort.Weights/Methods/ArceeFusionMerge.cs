using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Consort.Weights.Engine;

namespace Consort.Weights.Methods;

/// <summary>
/// mergekit's <c>arcee_fusion</c>: per element, importance = |other − base| × KL(softmax(other row) ‖ softmax(base row))
/// (rows of the innermost dimension, each softmax plus 1e-8); the other model's change is kept where the importance
/// reaches median + 1.5·IQR of all importances (quantiles of a ~1M sample when the tensor is larger, as mergekit
/// samples; here a seeded Bernoulli sample drawn by its geometric gaps, so it is reproducible and costs a draw per kept element).
/// </summary>
public sealed class ArceeFusionMerge : IMergeMethod
{
    /// <summary>Largest number of importances whose quantiles are taken exactly.</summary>
    public const int SampleSize = 1_000_000;

    /// <inheritdoc />
    public string Name => "arcee_fusion";
    /// <inheritdoc />
    public bool RequiresBase => true;
    /// <inheritdoc />
    public int MinModels => 1;
    /// <inheritdoc />
    public int MaxModels => 1;
    /// <inheritdoc />
    public IReadOnlyList<MergeParameterSpec> Parameters { get; } = [];

    /// <summary>KL(softmax(p) + 1e-8 ‖ softmax(q) + 1e-8) of two rows (vectorized, in single precision: it runs for
    /// every row of every tensor, and the double-precision loop made this method 25x slower than a read of its inputs).
    /// With hardware vectors (any width: AVX2, AVX-512, NEON) the exponentials and their sums come in one pass and the
    /// divergence in a second, the rows staying in the L1 cache; otherwise one TensorPrimitives operation after another.</summary>
    public static double RowKl(ReadOnlySpan<float> p, ReadOnlySpan<float> q)
    {
        int n = p.Length;
        if (q.Length != n) throw new ArgumentException("rows differ in length");
        float[] rent = System.Buffers.ArrayPool<float>.Shared.Rent(2 * n);
        try
        {
            var a = rent.AsSpan(0, n); var b = rent.AsSpan(n, n);
            if (Vector.IsHardwareAccelerated && n >= Vector<float>.Count) return FusedKl(p, q, a, b);
            static void Soft(ReadOnlySpan<float> x, Span<float> into)
            {
                TensorPrimitives.Subtract(x, TensorPrimitives.Max(x), into);
                TensorPrimitives.Exp(into, into);
                TensorPrimitives.Multiply(into, 1f / TensorPrimitives.Sum(into), into);
                TensorPrimitives.Add(into, 1e-8f, into);
            }
            Soft(p, a); Soft(q, b);
            TensorPrimitives.Divide(a, b, b);
            TensorPrimitives.Log(b, b);
            return TensorPrimitives.Dot(a, b);
        }
        finally
        {
            System.Buffers.ArrayPool<float>.Shared.Return(rent);
        }
    }

    private static double FusedKl(ReadOnlySpan<float> p, ReadOnlySpan<float> q, Span<float> ea, Span<float> eb)
    {
        int n = p.Length, w = Vector<float>.Count;
        var mp = new Vector<float>(TensorPrimitives.Max(p)); var mq = new Vector<float>(TensorPrimitives.Max(q));
        ref float p0 = ref MemoryMarshal.GetReference(p), q0 = ref MemoryMarshal.GetReference(q);
        ref float a0 = ref MemoryMarshal.GetReference(ea), b0 = ref MemoryMarshal.GetReference(eb);
        // The last vector overlaps the one before it; its lanes already counted are masked out of the sums.
        int last = n - w;
        var tail = Vector.AsVectorSingle(Vector.GreaterThanOrEqual(Vector<int>.Indices, new Vector<int>(last % w == 0 ? 0 : w - n % w)));
        Vector<float> sa = Vector<float>.Zero, sb = Vector<float>.Zero;
        for (int i = 0; ; i += w)
        {
            bool end = i >= last;
            if (end) i = last;
            var x = Vector.Exp(Vector.LoadUnsafe(ref p0, (nuint)i) - mp);
            var y = Vector.Exp(Vector.LoadUnsafe(ref q0, (nuint)i) - mq);
            x.StoreUnsafe(ref a0, (nuint)i); y.StoreUnsafe(ref b0, (nuint)i);
            if (end) { sa += x & tail; sb += y & tail; break; }
            sa += x; sb += y;
        }
        var ia = new Vector<float>(1f / Vector.Sum(sa)); var ib = new Vector<float>(1f / Vector.Sum(sb));
        var eps = new Vector<float>(1e-8f);
        Vector<float> acc = Vector<float>.Zero;
        for (int i = 0; ; i += w)
        {
            bool end = i >= last;
            if (end) i = last;
            var x = Vector.LoadUnsafe(ref a0, (nuint)i) * ia + eps;
            var y = Vector.LoadUnsafe(ref b0, (nuint)i) * ib + eps;
            var t = x * Vector.Log(x / y);
            if (end) { acc += t & tail; break; }
            acc += t;
        }
        return Vector.Sum(acc);
    }

    /// <summary>mergekit's approximate quantile: the sorted sample's element at floor(q·(n − 1)).</summary>
    public static float Quantile(float[] sorted, double q) => sorted[(long)(q * (sorted.Length - 1))];

    /// <inheritdoc />
    public void Merge(TensorJob job)
    {
        int other = job.SourceOf(job.NonBaseModels().First());
        int rowLen = (int)Math.Min(Math.Max(1, job.RowLength), job.Count);
        int[] sources = [job.BaseSource, other];
        var kl = new float[(job.Count + rowLen - 1) / rowLen];
        bool sampled = job.Count > SampleSize;
        double keep = (double)SampleSize / job.Count;
        var stream = ElementRandom.Stream(job.Seed, job.Name, 0);
        // The sample lands in a pooled array: a fresh multi-megabyte array per tensor is fresh pages, and faulting
        // them in cost more than computing the sample.
        var pool = System.Buffers.ArrayPool<float>.Shared;
        float[] sample = pool.Rent((int)Math.Min(job.Count, sampled ? SampleSize + 8 * (int)Math.Sqrt(SampleSize) + rowLen : job.Count));
        int taken = 0;
        // Rows of importances and of the picked sample, one pair per worker (fresh arrays per block were fresh pages).
        using var scratch = new ThreadLocal<(float[], float[])>(() => { var i = new float[rowLen]; return (i, sampled ? new float[rowLen] : i); });
        int blockLen = BlockPasses.BlockLength(job, rowLen), partCapacity = (int)Math.Min(blockLen, (long)(blockLen * keep * 1.5) + 64);
        BlockPasses.Scan(job, sources, rowLen, () => new List<float>(partCapacity), (b, part) =>
        {
            var bs = b.In(0); var x = b.In(1);
            // Importances of a row, |x − base|·KL (the same float operations as per element), then the sample.
            var (imp, picked) = scratch.Value;
            for (int r0 = 0; r0 < b.Length; r0 += rowLen)
            {
                long row = (b.Start + r0) / rowLen;
                float rowKl = kl[row] = (float)RowKl(x.Slice(r0, rowLen), bs.Slice(r0, rowLen));
                Importance(x.Slice(r0, rowLen), bs.Slice(r0, rowLen), rowKl, imp);
                int m = sampled ? ElementRandom.SampleByGaps(stream, b.Start + r0, keep, imp, picked) : rowLen;
                part.AddRange(picked.AsSpan(0, m));
            }
        }, part =>
        {
            if (taken + part.Count > sample.Length)
            {
                var bigger = pool.Rent(Math.Max(2 * sample.Length, taken + part.Count));
                sample.AsSpan(0, taken).CopyTo(bigger);
                pool.Return(sample);
                sample = bigger;
            }
            part.CopyTo(sample, taken);
            taken += part.Count;
        });
        float threshold;
        try
        {
            var (q25, q50, q75) = Quartiles(sample.AsSpan(0, taken));
            threshold = taken == 0 ? 0 : q50 + 1.5f * (q75 - q25);
        }
        finally
        {
            pool.Return(sample);
        }
        BlockPasses.Map(job, sources, rowLen, b =>
        {
            var bs = b.In(0); var x = b.In(1); var o = b.Out;
            for (int r0 = 0; r0 < b.Length; r0 += rowLen)
            {
                float rowKl = kl[(b.Start + r0) / rowLen];
                int j = r0, end = r0 + rowLen;
                if (Vector.IsHardwareAccelerated)
                {
                    var vk = new Vector<float>(rowKl); var vt = new Vector<float>(threshold);
                    for (; j <= end - Vector<float>.Count; j += Vector<float>.Count)
                    {
                        var vb = new Vector<float>(bs.Slice(j)); var d = new Vector<float>(x.Slice(j)) - vb;
                        Vector.ConditionalSelect(Vector.GreaterThanOrEqual(Vector.Abs(d) * vk, vt), vb + d, vb).CopyTo(o.Slice(j));
                    }
                }
                for (; j < end; j++)
                {
                    float d = x[j] - bs[j];
                    o[j] = MathF.Abs(d) * rowKl >= threshold ? bs[j] + d : bs[j];
                }
            }
        });
    }

    // |x − base|·kl per element, in one pass (the same float operations as the threshold test of the output pass).
    private static void Importance(ReadOnlySpan<float> x, ReadOnlySpan<float> bs, float kl, Span<float> into)
    {
        int j = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var vk = new Vector<float>(kl);
            for (; j <= x.Length - Vector<float>.Count; j += Vector<float>.Count)
                (Vector.Abs(new Vector<float>(x.Slice(j)) - new Vector<float>(bs.Slice(j))) * vk).CopyTo(into.Slice(j));
        }
        for (; j < x.Length; j++) into[j] = MathF.Abs(x[j] - bs[j]) * kl;
    }

    /// <summary>
    /// The quantiles 0.25, 0.5 and 0.75 of <paramref name="values"/> as <see cref="Quantile"/> takes them from the
    /// sorted array, by a radix select on order-preserving keys (two histogram passes instead of sorting a million
    /// values per tensor); with a NaN among the values it sorts, as the order of NaNs is Array.Sort's.
    /// </summary>
    internal static (float Q25, float Q50, float Q75) Quartiles(ReadOnlySpan<float> values)
    {
        if (values.Length == 0) return (0, 0, 0);
        long[] ranks = [(long)(0.25 * (values.Length - 1)), (long)(0.5 * (values.Length - 1)), (long)(0.75 * (values.Length - 1))];
        if (float.IsNaN(TensorPrimitives.Sum(values)) && HasNaN(values))
        {
            var sorted = values.ToArray();
            Array.Sort(sorted);
            return (sorted[ranks[0]], sorted[ranks[1]], sorted[ranks[2]]);
        }
        // Order-preserving keys: negative floats flipped entirely, positive ones with the sign bit set (−0 sorts just
        // below +0; they compare equal, so either is the quantile's value).
        static uint Key(float v) { uint b = BitConverter.SingleToUInt32Bits(v); return (b & 0x80000000u) != 0 ? ~b : b | 0x80000000u; }
        static float Value(uint k) => BitConverter.UInt32BitsToSingle((k & 0x80000000u) != 0 ? k & 0x7fffffffu : ~k);
        var ints = System.Buffers.ArrayPool<int>.Shared;
        int[] high = ints.Rent(1 << 16), low = ints.Rent(1 << 16);
        try
        {
            Array.Clear(high, 0, 1 << 16);
            foreach (var v in values) high[Key(v) >> 16]++;
            var result = new float[3];
            for (int q = 0; q < 3; q++)
            {
                long below = 0; int bucket = 0;
                while (below + high[bucket] <= ranks[q]) below += high[bucket++];
                Array.Clear(low, 0, 1 << 16);
                foreach (var v in values) { uint key = Key(v); if (key >> 16 == (uint)bucket) low[key & 0xffff]++; }
                int lb = 0;
                while (below + low[lb] <= ranks[q]) below += low[lb++];
                result[q] = Value((uint)bucket << 16 | (uint)lb);
            }
            return (result[0], result[1], result[2]);
        }
        finally
        {
            ints.Return(high); ints.Return(low);
        }
    }

    private static bool HasNaN(ReadOnlySpan<float> values)
    {
        foreach (var v in values) if (float.IsNaN(v)) return true;
        return false;
    }
}
