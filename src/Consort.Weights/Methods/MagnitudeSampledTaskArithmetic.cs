using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Consort.Weights.Config;
using Consort.Weights.Engine;

namespace Consort.Weights.Methods;

/// <summary>
/// mergekit's DELLA family (<c>della</c>, <c>della_linear</c>): task arithmetic whose task vectors are pruned with
/// magnitude-ranked keep probabilities. In each row (the innermost dimension; a 1-D tensor is one row) the
/// magnitudes are ranked, and an element of rank r of n is kept with probability
/// (density − epsilon) + 2·epsilon·(r − 1)/(n − 1), so the smallest change has density − epsilon and the largest
/// density + epsilon. With <c>rescale</c> (default) the pruned vector is scaled to keep its L1 norm (mergekit's
/// rescale; the paper scales each kept element by 1/p instead). Then as TIES (<c>della</c>: sign election) or as
/// task arithmetic (<c>della_linear</c>), with <c>weight</c>, <c>normalize</c> and <c>lambda</c>.
/// </summary>
public abstract class MagnitudeSampledTaskArithmetic : IMergeMethod
{
    /// <inheritdoc />
    public abstract string Name { get; }
    /// <summary>Whether TIES sign election is applied.</summary>
    protected abstract bool Consensus { get; }
    /// <summary>Default of "normalize".</summary>
    protected abstract bool DefaultNormalize { get; }

    /// <inheritdoc />
    public bool RequiresBase => true;
    /// <inheritdoc />
    public int MinModels => 1;
    /// <inheritdoc />
    public int MaxModels => int.MaxValue;
    /// <inheritdoc />
    public IReadOnlyList<MergeParameterSpec> Parameters =>
    [
        new("weight", null, true), new("density", 1.0, true) { Min = 0, Max = 1 }, new("epsilon", 0.15, true) { Min = 0, Max = 1, MaxExclusive = true },
        new("normalize", DefaultNormalize, false), new("rescale", true, false), new("lambda", 1.0, false), new("int8_mask", false, false),
    ];

    /// <inheritdoc />
    public void Validate(MergeConfig config)
    {
        // Every density that prunes (0 < d < 1) with every epsilon that can apply must keep d ± epsilon inside (0, 1).
        IEnumerable<double> Doubles(string key, MergeModel m) =>
            (m.Parameters.GetValueOrDefault(key) ?? config.Parameters.GetValueOrDefault(key))?.Values().OfType<double>() ?? [];
        foreach (var m in config.Models.Where(m => m.Path != config.BaseModel))
        {
            var eps = Doubles("epsilon", m).DefaultIfEmpty(0.15).Max();
            foreach (var d in Doubles("density", m).DefaultIfEmpty(1.0))
                if (d > 0 && d < 1 && (d - eps <= 0 || d + eps >= 1))
                    throw new ConfigException($"merge_method '{Name}': model '{Path.GetFileName(m.Path)}' has density {d} with epsilon {eps}: density - epsilon and density + epsilon must lie inside (0, 1), i.e. epsilon < {Math.Min(d, 1 - d)}");
        }
    }

    /// <inheritdoc />
    public void Merge(TensorJob job)
    {
        var models = job.NonBaseModels().ToArray();
        int k = models.Length;
        var src = models.Select(job.SourceOf).ToArray();
        var w = models.Select(m => (float)job.ModelParam(m, "weight", null)).ToArray();
        var density = models.Select(m => job.ModelParam(m, "density", 1.0)).ToArray();
        var epsilon = models.Select(m => job.ModelParam(m, "epsilon", 0.15)).ToArray();
        bool normalize = job.Flag("normalize", DefaultNormalize), rescale = job.Flag("rescale", true);
        float lambda = (float)job.Global("lambda", 1.0);
        int rowLen = (int)Math.Min(Math.Max(1, job.RowLength), job.Count);
        int[] sources = [.. src, job.BaseSource];
        var streams = models.Select(m => ElementRandom.Stream(job.Seed, job.Name, m)).ToArray();
        bool Prunes(int i) => density[i] > 0 && density[i] < 1;

        // Scratch of a worker: the k task vectors of a block, the result, ranks of one row.
        (float[][] D, float[] Result, int[] Ranks, RowRanks Ranker) NewScratch()
        {
            int n = BlockPasses.BlockLength(job, rowLen);
            return (Enumerable.Range(0, k).Select(_ => new float[n]).ToArray(), new float[n], new int[rowLen], new RowRanks());
        }
        // The keep masks of the rescale scan, one bit per element and block of each pruning model, so the output pass
        // applies them instead of ranking every row again (ranking is most of DELLA's cost). Held when small: a
        // streamed tensor of hundreds of millions of elements ranks twice instead.
        int blockLen = BlockPasses.BlockLength(job, rowLen), blockCount = (int)((job.Count + blockLen - 1) / blockLen);
        bool cacheMasks = rescale && (long)k * blockCount * ((blockLen + 63) / 64) * 8 <= MaskCacheBytes;
        var masks = cacheMasks ? Enumerable.Range(0, k).Select(i => Prunes(i) ? new ulong[blockCount][] : null).ToArray() : null;

        // Task vectors of a block, pruned: rank each row's magnitudes, keep with the rank's probability (or apply the
        // cached mask). Branch-free: the keep decisions are random, so a branch would mispredict half the time.
        void Deltas(Block b, (float[][] D, float[] Result, int[] Ranks, RowRanks Ranker) s, bool useMasks)
        {
            var bs = b.In(k);
            for (int i = 0; i < k; i++)
            {
                var d = s.D[i].AsSpan(0, b.Length);
                TensorPrimitives.Subtract(b.In(i), bs, d);
                if (density[i] <= 0) { d.Clear(); continue; }
                if (density[i] >= 1) continue;
                var bits = MemoryMarshal.Cast<float, uint>(d);
                if (useMasks && masks![i]![b.Index] is { } cached)
                {
                    KeepMask.Apply(cached, bits);
                    continue;
                }
                var mask = masks?[i] is { } store ? store[b.Index] = new ulong[(b.Length + 63) / 64] : null;
                double low = density[i] - epsilon[i], span = 2 * epsilon[i];
                double step = rowLen > 1 ? span / (rowLen - 1) : 0;
                var ranks = s.Ranks;
                for (int r0 = 0; r0 < b.Length; r0 += rowLen)
                {
                    s.Ranker.Keep(bits.Slice(r0, rowLen), streams[i], b.Start + r0, low, step, mask, r0, ranks);
                }
            }
        }

        // mergekit's L1 rescale of each pruned task vector: Σ|d| / Σ|kept d| over the tensor.
        var scale = Enumerable.Repeat(1f, k).ToArray();
        if (rescale && Enumerable.Range(0, k).Any(Prunes))
        {
            var sums = new double[2 * k];
            using var scratch = new ThreadLocal<(float[][], float[], int[], RowRanks)>(NewScratch);
            BlockPasses.Scan(job, sources, rowLen, () => new double[2 * k], (b, part) =>
            {
                var s = scratch.Value;
                var bs = b.In(k);
                for (int i = 0; i < k; i++)
                {
                    if (!Prunes(i)) continue;
                    var before = s.Item2.AsSpan(0, b.Length);
                    TensorPrimitives.Subtract(b.In(i), bs, before);
                    part[i] = TensorPrimitives.SumOfMagnitudes(before);
                }
                Deltas(b, s, useMasks: false);
                for (int i = 0; i < k; i++) if (Prunes(i)) part[k + i] = TensorPrimitives.SumOfMagnitudes(s.Item1[i].AsSpan(0, b.Length));
            }, part => { for (int i = 0; i < 2 * k; i++) sums[i] += part[i]; });
            for (int i = 0; i < k; i++)
                if (Prunes(i) && sums[i] >= 1e-7 && sums[k + i] >= 1e-7) scale[i] = (float)(sums[i] / sums[k + i]);
        }

        float ws = w.Sum();
        var sw = Enumerable.Range(0, k).Select(i => scale[i] * w[i]).ToArray();
        BlockPasses.Map(job, sources, rowLen, NewScratch, (b, s) =>
        {
            Deltas(b, s, useMasks: masks is not null);
            GeneralizedTaskArithmetic.Finish(s.D, k, sw, w, Consensus, normalize, ws, lambda, b.In(k), b.Out);
        });
    }

    /// <summary>Most bytes of keep masks a tensor's rescale scan holds for its output pass.</summary>
    internal const long MaskCacheBytes = 16 << 20;
}
