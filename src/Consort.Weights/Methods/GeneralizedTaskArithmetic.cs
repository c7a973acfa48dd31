using System.Numerics;
using System.Numerics.Tensors;
using Consort.Weights.Engine;

namespace Consort.Weights.Methods;

/// <summary>How task vectors are sparsified before mixing (mergekit's sparsification methods).</summary>
public enum Sparsification
{
    /// <summary>Kept whole.</summary>
    None,
    /// <summary>Keep the top density fraction by magnitude (TIES).</summary>
    Magnitude,
    /// <summary>Keep each element with probability density (DARE).</summary>
    Random,
    /// <summary>Drop the largest gamma fraction and the smallest so that density remains (breadcrumbs).</summary>
    MagnitudeOutliers,
}

/// <summary>
/// mergekit's generalized task arithmetic: task vectors d_i = x_i - base are sparsified (per-model density),
/// weighted, optionally sign-elected ("sum" consensus: the sign of the summed weighted deltas; zeros never agree),
/// summed, divided by the (agreeing) weight sum when normalize, scaled by lambda, and added to the base.
/// </summary>
public abstract class GeneralizedTaskArithmetic : IMergeMethod
{
    /// <inheritdoc />
    public abstract string Name { get; }
    /// <summary>Whether TIES sign election is applied.</summary>
    protected abstract bool Consensus { get; }
    /// <summary>The sparsification.</summary>
    protected abstract Sparsification Sparsify { get; }
    /// <summary>Default of "normalize".</summary>
    protected abstract bool DefaultNormalize { get; }
    /// <summary>Default of "rescale".</summary>
    protected virtual bool DefaultRescale => Sparsify == Sparsification.Random;

    /// <inheritdoc />
    public bool RequiresBase => true;
    /// <inheritdoc />
    public int MinModels => 1;
    /// <inheritdoc />
    public int MaxModels => int.MaxValue;
    /// <inheritdoc />
    public IReadOnlyList<MergeParameterSpec> Parameters =>
    [
        new("weight", null, true), new("density", 1.0, true), new("gamma", 0.01, true),
        new("normalize", DefaultNormalize, false), new("rescale", DefaultRescale, false), new("lambda", 1.0, false), new("int8_mask", false, false),
    ];

    /// <inheritdoc />
    public void Merge(TensorJob job)
    {
        var models = job.NonBaseModels().ToArray();
        int k = models.Length;
        var src = models.Select(job.SourceOf).ToArray();
        var w = models.Select(m => (float)job.ModelParam(m, "weight", null)).ToArray();
        var density = models.Select(m => job.ModelParam(m, "density", 1.0)).ToArray();
        bool normalize = job.Flag("normalize", DefaultNormalize), rescale = job.Flag("rescale", DefaultRescale);
        float lambda = (float)job.Global("lambda", 1.0);
        if (job.InMemory)
        {
            MergeInMemory(job, models, src, w, density, normalize, rescale, lambda);
            return;
        }

        // Whole-tensor selections (extra streaming passes) and rescale factors, per model.
        var keep = new TopKSelector?[k];
        var drop = new TopKSelector?[k];
        var scale = Enumerable.Repeat(1f, k).ToArray();
        var streams = models.Select(m => ElementRandom.Stream(job.Seed, job.Name, m)).ToArray();
        for (int i = 0; i < k; i++)
        {
            if (density[i] >= 1) continue;
            long n = job.Count;
            switch (Sparsify)
            {
                case Sparsification.Magnitude:
                    keep[i] = TopKSelector.Build((long)(density[i] * n), n, v => job.ScanDelta(src[i], v));
                    break;
                case Sparsification.MagnitudeOutliers:
                    var (kept, top) = OutlierCounts(n, density[i], job.ModelParam(models[i], "gamma", 0.01));
                    keep[i] = TopKSelector.Build(kept, n, v => job.ScanDelta(src[i], v));
                    drop[i] = top > 0 ? TopKSelector.Build(top, n, v => job.ScanDelta(src[i], v)) : null;
                    break;
                case Sparsification.Random:
                    if (rescale) scale[i] = (float)(1 / density[i]);
                    break;
            }
            if (rescale && Sparsify != Sparsification.Random)
            {
                // mergekit's rescale_sum: keep the L1 norm of the task vector.
                double org = 0, kept = 0;
                keep[i]?.Reset(); drop[i]?.Reset();
                job.ScanDelta(src[i], v =>
                {
                    foreach (var x in v)
                    {
                        org += Math.Abs(x);
                        if (Keeps(keep[i], drop[i], x)) kept += Math.Abs(x);
                    }
                });
                if (org >= 1e-8 && kept >= 1e-8) scale[i] = (float)(org / kept);
            }
            keep[i]?.Reset(); drop[i]?.Reset();
        }

        var b = job.Buffer(0); var mixed = job.Buffer(1); var div = job.Buffer(2);
        var deltas = Enumerable.Range(0, k).Select(i => job.Buffer(3 + i)).ToArray();
        foreach (var (s, n) in job.Chunks())
        {
            var bs = b.AsSpan(0, n);
            job.Read(job.BaseSource, s, bs);
            for (int i = 0; i < k; i++)
            {
                var d = deltas[i].AsSpan(0, n);
                job.Read(src[i], s, d);
                TensorPrimitives.Subtract(d, bs, d);
                if (density[i] < 1)
                {
                    if (Sparsify == Sparsification.Random)
                    {
                        for (int j = 0; j < n; j++)
                            if (ElementRandom.Uniform(streams[i], s + j) >= density[i]) d[j] = 0;
                    }
                    else
                        for (int j = 0; j < n; j++)
                            if (!Keeps(keep[i], drop[i], d[j])) d[j] = 0;
                }
                TensorPrimitives.Multiply(d, scale[i] * w[i], d); // weighted delta
            }
            var mx = mixed.AsSpan(0, n); var dv = div.AsSpan(0, n);
            if (Consensus)
            {
                for (int j = 0; j < n; j++)
                {
                    float sum = 0;
                    for (int i = 0; i < k; i++) sum += deltas[i][j];
                    float sign = sum >= 0 ? 1 : -1;
                    float m = 0, dw = 0;
                    for (int i = 0; i < k; i++)
                    {
                        float x = deltas[i][j];
                        if (x != 0 && MathF.Sign(x) == sign) { m += x; dw += w[i]; }
                    }
                    mx[j] = m;
                    dv[j] = dw == 0 ? 1 : dw;
                }
                if (normalize) TensorPrimitives.Divide(mx, dv, mx);
            }
            else
            {
                mx.Clear();
                for (int i = 0; i < k; i++) TensorPrimitives.Add(mx, deltas[i].AsSpan(0, n), mx);
                float ws = w.Sum();
                if (normalize && Math.Abs(ws) >= 1e-8) TensorPrimitives.Divide(mx, ws, mx);
            }
            if (lambda != 1) TensorPrimitives.Multiply(mx, lambda, mx);
            TensorPrimitives.Add(bs, mx, mx);
            job.Emit(mx);
        }
    }

    /// <summary>
    /// The same computation on a tensor held in memory: each input decoded once, the selections built from
    /// in-memory histograms, and the final element-wise pass run over parts in parallel (vectorized). Every element
    /// goes through the same float operations in the same order as in the streaming pass, and the equal-magnitude
    /// quotas are split over the parts by counting ties before each part, so the output is bit-identical.
    /// </summary>
    private void MergeInMemory(TensorJob job, int[] models, int[] src, float[] w, double[] density, bool normalize, bool rescale, float lambda)
    {
        int k = models.Length, n = checked((int)job.Count), par = job.Parallelism;
        var bs = job.Whole(job.BaseSource);
        var deltas = src.Select(job.DecodeDelta).ToArray();
        var keep = new TopKSelector?[k];
        var drop = new TopKSelector?[k];
        var scale = Enumerable.Repeat(1f, k).ToArray();
        var streams = models.Select(m => ElementRandom.Stream(job.Seed, job.Name, m)).ToArray();
        for (int i = 0; i < k; i++)
        {
            if (density[i] >= 1) continue;
            var d = deltas[i].AsSpan(0, n);
            switch (Sparsify)
            {
                case Sparsification.Magnitude:
                    keep[i] = TopKSelector.Build((long)(density[i] * n), d, par);
                    break;
                case Sparsification.MagnitudeOutliers:
                    var (kept, top) = OutlierCounts(n, density[i], job.ModelParam(models[i], "gamma", 0.01));
                    keep[i] = TopKSelector.Build(kept, d, par);
                    drop[i] = top > 0 ? TopKSelector.Build(top, d, par) : null;
                    break;
                case Sparsification.Random:
                    if (rescale) scale[i] = (float)(1 / density[i]);
                    break;
            }
            if (rescale && Sparsify != Sparsification.Random)
            {
                // Sequential, in element order: the double sums must round exactly as in the streaming pass.
                double org = 0, kept = 0;
                keep[i]?.Reset(); drop[i]?.Reset();
                foreach (var x in d)
                {
                    org += Math.Abs(x);
                    if (Keeps(keep[i], drop[i], x)) kept += Math.Abs(x);
                }
                if (org >= 1e-8 && kept >= 1e-8) scale[i] = (float)(org / kept);
            }
        }

        // Parts, and each selector's quota at each part's
        // start: the quota left after the ties in the parts before it.
        int partLen = Math.Min(1 << 14, job.ChunkSize); // small enough to stay in cache across the k + 3 arrays
        int parts = (n + partLen - 1) / partLen;
        var options = new ParallelOptions { MaxDegreeOfParallelism = par };
        long[][] QuotaStarts(TopKSelector?[] sel)
        {
            var q = new long[k][];
            for (int i = 0; i < k; i++)
            {
                if (sel[i] is not { Partial: true } s) continue;
                var eq = new long[parts];
                var arr = deltas[i];
                Parallel.For(0, parts, options, p => eq[p] = s.CountEqual(arr.AsSpan(p * partLen, Math.Min(partLen, n - p * partLen))));
                q[i] = new long[parts];
                long left = s.EqualQuota;
                for (int p = 0; p < parts; p++) { q[i][p] = left; left = Math.Max(0, left - eq[p]); }
            }
            return q;
        }
        var keepQuota = QuotaStarts(keep);
        var dropQuota = QuotaStarts(drop);
        float ws = w.Sum();
        bool consensus = Consensus;
        var sparsify = Sparsify;
        Parallel.For(0, parts, options, () => (new float[partLen], new float[partLen]), [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)] (p, _, scratch) =>
        {
            int s0 = p * partLen, len = Math.Min(partLen, n - s0);
            var (mixed, div) = scratch;
            for (int i = 0; i < k; i++)
            {
                var d = deltas[i].AsSpan(s0, len);
                if (density[i] < 1)
                {
                    if (sparsify == Sparsification.Random)
                    {
                        for (int j = 0; j < len; j++)
                            if (ElementRandom.Uniform(streams[i], s0 + j) >= density[i]) d[j] = 0;
                    }
                    else if (drop[i] is null)
                    {
                        long q = keepQuota[i]?[p] ?? 0;
                        keep[i]!.Mask(d, ref q);
                    }
                    else
                    {
                        long qk = keepQuota[i]?[p] ?? 0, qd = dropQuota[i]?[p] ?? 0;
                        for (int j = 0; j < len; j++)
                        {
                            bool inKeep = keep[i]!.Keep(d[j], ref qk);
                            bool inDrop = drop[i]!.Keep(d[j], ref qd);
                            if (!(inKeep && !inDrop)) d[j] = 0;
                        }
                    }
                }
                TensorPrimitives.Multiply(d, scale[i] * w[i], d);
            }
            var mx = mixed.AsSpan(0, len); var dv = div.AsSpan(0, len);
            if (consensus)
            {
                Elect(deltas, w, s0, mx, dv);
                if (normalize) TensorPrimitives.Divide(mx, dv, mx);
            }
            else
            {
                mx.Clear();
                for (int i = 0; i < k; i++) TensorPrimitives.Add(mx, deltas[i].AsSpan(s0, len), mx);
                if (normalize && Math.Abs(ws) >= 1e-8) TensorPrimitives.Divide(mx, ws, mx);
            }
            if (lambda != 1) TensorPrimitives.Multiply(mx, lambda, mx);
            var b = bs.AsSpan(s0, len);
            TensorPrimitives.Add(b, mx, b); // the result replaces the base in place
            return scratch;
        }, _ => { });
        job.EmitAll(bs);
    }

    /// <summary>
    /// TIES sign election ("sum"), vectorized: per element the sign of the summed weighted deltas, the sum of the
    /// deltas agreeing with it (<paramref name="mx"/>) and of their weights (<paramref name="dv"/>, 1 when none agree),
    /// summed from 0 in model order like the scalar loop.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static void Elect(float[][] deltas, float[] w, int start, Span<float> mx, Span<float> dv)
    {
        int k = deltas.Length, len = mx.Length, j = 0;
        if (Vector.IsHardwareAccelerated)
        {
            int vc = Vector<float>.Count;
            var zero = Vector<float>.Zero; var one = Vector<float>.One;
            for (; j <= len - vc; j += vc)
            {
                var sum = zero;
                for (int i = 0; i < k; i++) sum += new Vector<float>(deltas[i], start + j);
                var pos = Vector.GreaterThanOrEqual(sum, zero);
                var m = zero; var dw = zero;
                for (int i = 0; i < k; i++)
                {
                    var x = new Vector<float>(deltas[i], start + j);
                    var agree = Vector.ConditionalSelect(pos, Vector.GreaterThan(x, zero), Vector.LessThan(x, zero));
                    m = Vector.ConditionalSelect(agree, m + x, m);
                    dw = Vector.ConditionalSelect(agree, dw + new Vector<float>(w[i]), dw);
                }
                m.CopyTo(mx.Slice(j, vc));
                Vector.ConditionalSelect(Vector.Equals(dw, zero), one, dw).CopyTo(dv.Slice(j, vc));
            }
        }
        for (; j < len; j++)
        {
            float sum = 0;
            for (int i = 0; i < k; i++) sum += deltas[i][start + j];
            float sign = sum >= 0 ? 1 : -1;
            float m = 0, dw = 0;
            for (int i = 0; i < k; i++)
            {
                float x = deltas[i][start + j];
                if (x != 0 && MathF.Sign(x) == sign) { m += x; dw += w[i]; }
            }
            mx[j] = m;
            dv[j] = dw == 0 ? 1 : dw;
        }
    }

    // Breadcrumbs: of n elements keep the largest (density + gamma) share, then drop the top gamma share as outliers;
    // when the two shares overflow n, all is kept and the top share shrinks to what is left over.
    private static (long Kept, long Top) OutlierCounts(long n, double density, double gamma)
    {
        long target = (long)(density * n), top = (long)(gamma * n);
        long bottom = n - target - top;
        if (bottom < 0) { bottom = 0; top = n - target; }
        return (n - bottom, top);
    }

    private static bool Keeps(TopKSelector? keep, TopKSelector? drop, float x)
    {
        bool inKeep = keep?.Keep(x) ?? true;
        bool inDrop = drop?.Keep(x) ?? false;
        return inKeep && !inDrop;
    }
}
