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
                    long target = (long)(density[i] * n), top = (long)(job.ModelParam(models[i], "gamma", 0.01) * n);
                    long bottom = n - target - top;
                    if (bottom < 0) { bottom = 0; top = n - target; }
                    keep[i] = TopKSelector.Build(n - bottom, n, v => job.ScanDelta(src[i], v));
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

    private static bool Keeps(TopKSelector? keep, TopKSelector? drop, float x)
    {
        bool inKeep = keep?.Keep(x) ?? true;
        bool inDrop = drop?.Keep(x) ?? false;
        return inKeep && !inDrop;
    }
}
