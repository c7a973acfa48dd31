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

    /// <summary>KL(softmax(p) + 1e-8 ‖ softmax(q) + 1e-8) of two rows.</summary>
    public static double RowKl(ReadOnlySpan<float> p, ReadOnlySpan<float> q)
    {
        static double LogSumExp(ReadOnlySpan<float> x, out double max)
        {
            max = double.NegativeInfinity;
            foreach (var v in x) max = Math.Max(max, v);
            double s = 0;
            foreach (var v in x) s += Math.Exp(v - max);
            return s;
        }
        double sp = LogSumExp(p, out double mp), sq = LogSumExp(q, out double mq), kl = 0;
        for (int j = 0; j < p.Length; j++)
        {
            double a = Math.Exp(p[j] - mp) / sp + 1e-8, b = Math.Exp(q[j] - mq) / sq + 1e-8;
            kl += a * Math.Log(a / b);
        }
        return kl;
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
