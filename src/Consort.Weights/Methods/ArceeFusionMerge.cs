using System.Numerics.Tensors;
using Consort.Weights.Engine;

namespace Consort.Weights.Methods;

/// <summary>
/// mergekit's <c>arcee_fusion</c>: per element, importance = |other − base| × KL(softmax(other row) ‖ softmax(base row))
/// (rows of the innermost dimension, each softmax plus 1e-8); the other model's change is kept where the importance
/// reaches median + 1.5·IQR of all importances (quantiles of a ~1M sample when the tensor is larger, as mergekit
/// samples; here a seeded Bernoulli sample, so it is reproducible).
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
    /// every row of every tensor, and the double-precision loop made this method 25x slower than a read of its inputs).</summary>
    public static double RowKl(ReadOnlySpan<float> p, ReadOnlySpan<float> q)
    {
        int n = p.Length;
        float[] rent = System.Buffers.ArrayPool<float>.Shared.Rent(2 * n);
        try
        {
            var a = rent.AsSpan(0, n); var b = rent.AsSpan(n, n);
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
        var sample = new List<float>();
        BlockPasses.Scan(job, sources, rowLen, () => new List<float>(), (b, part) =>
        {
            var bs = b.In(0); var x = b.In(1);
            for (int r0 = 0; r0 < b.Length; r0 += rowLen)
            {
                long row = (b.Start + r0) / rowLen;
                float rowKl = kl[row] = (float)RowKl(x.Slice(r0, rowLen), bs.Slice(r0, rowLen));
                for (int j = r0; j < r0 + rowLen; j++)
                    if (!sampled || ElementRandom.Uniform(stream, b.Start + j) < keep) part.Add(MathF.Abs(x[j] - bs[j]) * rowKl);
            }
        }, part => sample.AddRange(part));
        var sorted = sample.ToArray();
        Array.Sort(sorted);
        float threshold = sorted.Length == 0 ? 0 : Quantile(sorted, 0.5) + 1.5f * (Quantile(sorted, 0.75) - Quantile(sorted, 0.25));
        BlockPasses.Map(job, sources, rowLen, b =>
        {
            var bs = b.In(0); var x = b.In(1); var o = b.Out;
            for (int j = 0; j < b.Length; j++)
            {
                float d = x[j] - bs[j];
                o[j] = MathF.Abs(d) * kl[(b.Start + j) / rowLen] >= threshold ? bs[j] + d : bs[j];
            }
        });
    }
}
