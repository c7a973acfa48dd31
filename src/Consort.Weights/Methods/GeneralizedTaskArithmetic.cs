using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
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
        new("weight", null, true), new("density", 1.0, true) { Min = 0, Max = 1 }, new("gamma", 0.01, true) { Min = 0, Max = 1 },
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
                        ElementRandom.Drop(streams[i], s, density[i], d);
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
    /// The same computation on a tensor whose output is held in memory, in parallel passes over blocks that stay in
    /// cache, each decoding its inputs from the memory-mapped files again (cheaper than storing task vectors). Top-k
    /// trimming (TIES, breadcrumbs) first takes a high-bits histogram of every 8th block to bound each threshold, then
    /// one scan of every block finds it exactly (after an exact histogram pass if the sample misled); the last pass
    /// masks, weights, elects, adds the base and encodes each output block. Random dropping and plain task arithmetic
    /// need the last pass only. Every element goes through the same float operations in the same order as in the
    /// streaming pass, and each block starts with the tie quota left by the blocks before it, so the output is
    /// bit-identical.
    /// </summary>
    private void MergeInMemory(TensorJob job, int[] models, int[] src, float[] w, double[] density, bool normalize, bool rescale, float lambda)
    {
        int k = models.Length, n = checked((int)job.Count), par = job.Parallelism, baseSource = job.BaseSource;
        var sparsify = Sparsify;
        int blockLen = Math.Min(BlockLength, job.ChunkSize);
        int blocks = (n + blockLen - 1) / blockLen;
        // Decodes one block's base and task vectors into a worker's scratch.
        void Deltas(int b, float[][] scratch, int len, int only = -1)
        {
            long s0 = (long)b * blockLen;
            var bb = scratch[k].AsSpan(0, len);
            job.ReadBlock(baseSource, s0, bb);
            for (int i = 0; i < k; i++)
            {
                if (only >= 0 && i != only) continue;
                var d = scratch[i].AsSpan(0, len);
                job.ReadBlock(src[i], s0, d);
                TensorPrimitives.Subtract(d, bb, d);
            }
        }
        float[][] NewScratch() => Enumerable.Range(0, k + 2).Select(_ => new float[blockLen]).ToArray(); // k task vectors, the base, the result

        // Selections: keep (top density share) and, for breadcrumbs, drop (the outliers); selection j of model j % k.
        var counts = new long[2 * k];
        for (int i = 0; i < k; i++)
        {
            if (density[i] >= 1 || sparsify is Sparsification.None or Sparsification.Random) { counts[i] = n; counts[k + i] = 0; continue; }
            if (sparsify == Sparsification.Magnitude) { counts[i] = (long)(density[i] * n); counts[k + i] = 0; }
            else (counts[i], counts[k + i]) = OutlierCounts(n, density[i], job.ModelParam(models[i], "gamma", 0.01));
        }
        var selectors = new TopKSelector?[2 * k];
        var quotas = new long[2 * k][];
        var active = Enumerable.Range(0, 2 * k).Where(j => counts[j] > 0 && counts[j] < n).ToArray();
        foreach (var j in Enumerable.Range(0, 2 * k).Except(active))
            if (j < k || counts[j] > 0) selectors[j] = TopKSelector.FromLowHistogram(new(counts[j], n, 0, 0), null); // all or none
        double selectionPasses = 0; // input decoded for the selections, in whole passes

        // Selections from a high histogram of every stride-th block: with a sample (stride > 1) it bounds each
        // threshold's high bucket to a narrow range, with every block (stride 1) it names the exact bucket. One scan
        // then counts the elements above the range and keeps those inside it, from which the threshold and the ties
        // per block follow. Returns false when a sample misled (the threshold lies outside its range).
        bool Select(int stride)
        {
            int sampled = (blocks + stride - 1) / stride;
            if (stride > 1 && sampled < 16) return false;
            var models1 = active.Select(j => j % k).Distinct().ToArray();
            var high = new long[k][];
            foreach (var i in models1) high[i] = new long[TopKSelector.HighBuckets];
            var gate = new object();
            long m = 0;
            BlockLoop.Run(sampled, par, () => (NewScratch(), new int[k][]), (sb, local) =>
            {
                int b = sb * stride, len = Math.Min(blockLen, n - b * blockLen);
                Deltas(b, local.Item1, len);
                foreach (var i in models1)
                    TopKSelector.AddHighHistogram(MemoryMarshal.Cast<float, uint>(local.Item1[i].AsSpan(0, len)), local.Item2[i] ??= new int[TopKSelector.HighBuckets]);
                Interlocked.Add(ref m, len);
            }, local =>
            {
                lock (gate)
                    foreach (var i in models1)
                        if (local.Item2[i] is { } h)
                            for (int q = 0; q < h.Length; q++) high[i][q] += h[q];
            });
            selectionPasses += (double)m / n;
            var ranges = active.ToDictionary(j => j, j => stride == 1
                ? (TopKSelector.FindBoundary(counts[j], n, high[j % k]).Bucket is var hb ? (Low: hb, High: hb) : default)
                : TopKSelector.EstimateRange(counts[j], n, high[j % k], m));

            var above = active.ToDictionary(j => j, _ => new long[blocks]);
            var inside = active.ToDictionary(j => j, _ => new uint[blocks][]);
            BlockLoop.Run(blocks, par, () => (NewScratch(), new uint[blockLen]), (b, local) =>
            {
                int len = Math.Min(blockLen, n - b * blockLen);
                Deltas(b, local.Item1, len);
                foreach (var j in active)
                {
                    var bits = MemoryMarshal.Cast<float, uint>(local.Item1[j % k].AsSpan(0, len));
                    int c = TopKSelector.ScanRange(bits, ranges[j].Low, ranges[j].High, out above[j][b], local.Item2);
                    inside[j][b] = local.Item2.AsSpan(0, c).ToArray();
                }
            });
            selectionPasses += 1;
            var found = new Dictionary<int, TopKSelector>();
            foreach (var j in active)
            {
                var sel = TopKSelector.FromCandidates(counts[j], n, above[j].Sum(), inside[j].SelectMany(x => x).ToArray());
                if (sel is null) return false;
                found[j] = sel;
            }
            foreach (var j in active)
            {
                var sel = selectors[j] = found[j];
                if (!sel.Partial) continue;
                uint t = sel.Threshold;
                quotas[j] = new long[blocks];
                long left = sel.EqualQuota;
                for (int b = 0; b < blocks; b++)
                {
                    quotas[j][b] = left;
                    int ties = 0;
                    foreach (var x in inside[j][b]) if (x == t) ties++;
                    left = Math.Max(0, left - ties);
                }
            }
            return true;
        }
        if (active.Length > 0 && !Select(SampleStride) && !Select(1))
            throw new InvalidOperationException($"tensor '{job.Name}': the exact boundary bucket did not hold the top-k threshold");

        var scale = Enumerable.Repeat(1f, k).ToArray();
        var passes = Enumerable.Repeat(1 + selectionPasses, k).ToArray();
        double basePasses = passes[0];
        for (int i = 0; i < k; i++)
        {
            if (density[i] >= 1 || !rescale) continue;
            if (sparsify == Sparsification.Random) { scale[i] = (float)(1 / density[i]); continue; }
            // mergekit's rescale_sum, sequential in element order: the double sums must round as in the streaming pass.
            double org = 0, kept = 0;
            var keep = selectors[i]; var drop = selectors[k + i];
            keep?.Reset(); drop?.Reset();
            var scratch = NewScratch();
            passes[i]++; basePasses++;
            for (int b = 0; b < blocks; b++)
            {
                int len = Math.Min(blockLen, n - b * blockLen);
                Deltas(b, scratch, len, i);
                foreach (var x in scratch[i].AsSpan(0, len))
                {
                    org += Math.Abs(x);
                    if (Keeps(keep, drop, x)) kept += Math.Abs(x);
                }
            }
            if (org >= 1e-8 && kept >= 1e-8) scale[i] = (float)(org / kept);
        }

        // Pass 3: mask, weight, mix, add the base, encode.
        var streams = models.Select(m => ElementRandom.Stream(job.Seed, job.Name, m)).ToArray();
        float ws = w.Sum();
        bool consensus = Consensus;
        var sw = Enumerable.Range(0, k).Select(i => scale[i] * w[i]).ToArray();
        BlockLoop.Run(blocks, par, NewScratch, (b, scratch) =>
        {
            int s0 = b * blockLen, len = Math.Min(blockLen, n - s0);
            Deltas(b, scratch, len);
            for (int i = 0; i < k; i++)
            {
                var d = scratch[i].AsSpan(0, len);
                if (density[i] < 1)
                {
                    if (sparsify == Sparsification.Random)
                        ElementRandom.Drop(streams[i], s0, density[i], d);
                    else if (selectors[k + i] is not { } drop)
                    {
                        long q = quotas[i]?[b] ?? 0;
                        selectors[i]!.Mask(d, ref q);
                    }
                    else
                    {
                        // Kept = in the keep selection and not in the drop one; both masks consume their own
                        // tie quotas in element order, as the per-element test does. The drop mask works on a copy
                        // (the result row, free until Finish): its nonzero bits mark the outliers.
                        long qk = quotas[i]?[b] ?? 0, qd = quotas[k + i]?[b] ?? 0;
                        var outliers = scratch[k + 1].AsSpan(0, len);
                        d.CopyTo(outliers);
                        drop.Mask(outliers, ref qd);
                        selectors[i]!.Mask(d, ref qk);
                        ClearWhereNonzero(d, outliers);
                    }
                }
            }
            var mx = scratch[k + 1].AsSpan(0, len);
            Finish(scratch, k, sw, w, consensus, normalize, ws, lambda, scratch[k].AsSpan(0, len), mx);
            job.EmitAt(s0, mx);
        });
        job.FinishReading(baseSource, basePasses);
        for (int i = 0; i < k; i++) job.FinishReading(src[i], passes[i]);
    }

    /// <summary>Zeroes <paramref name="values"/>[j] wherever the bits of <paramref name="marks"/>[j] are not all zero.</summary>
    private static void ClearWhereNonzero(Span<float> values, ReadOnlySpan<float> marks)
    {
        var v = MemoryMarshal.Cast<float, uint>(values);
        var m = MemoryMarshal.Cast<float, uint>(marks);
        int j = 0;
        if (Vector.IsHardwareAccelerated)
            for (; j <= v.Length - Vector<uint>.Count; j += Vector<uint>.Count)
                Vector.AndNot(new Vector<uint>(v.Slice(j)), ~Vector.Equals(new Vector<uint>(m.Slice(j)), Vector<uint>.Zero)).CopyTo(v.Slice(j));
        for (; j < v.Length; j++) if (m[j] != 0) v[j] = 0;
    }

    /// <summary>Every how many blocks the sample for the selections takes one.</summary>
    internal const int SampleStride = 8;

    /// <summary>Elements per block of the in-memory passes (the base, k task vectors and two work rows stay in L2).</summary>
    internal const int BlockLength = 1 << 13;

    /// <summary>
    /// Pass 3's element-wise tail in one vectorized loop: weight each (masked) task vector by scale·weight, mix them
    /// (sign election or sum), normalize, scale by lambda and add the base, writing <paramref name="result"/>. The
    /// float operations per element are those of the separate steps of the streaming pass, in the same order.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    internal static void Finish(float[][] d, int k, float[] sw, float[] w, bool consensus, bool normalize, float ws, float lambda,
        ReadOnlySpan<float> baseValues, Span<float> result)
    {
        int len = result.Length, j = 0;
        bool divideBySum = !consensus && normalize && Math.Abs(ws) >= 1e-8;
        if (Vector.IsHardwareAccelerated && k <= 8)
        {
            int vc = Vector<float>.Count;
            var zero = Vector<float>.Zero; var one = Vector<float>.One;
            var vl = new Vector<float>(lambda); var vws = new Vector<float>(ws);
            Span<Vector<float>> x = stackalloc Vector<float>[8];
            for (; j <= len - vc; j += vc)
            {
                var sum = zero;
                for (int i = 0; i < k; i++) { x[i] = new Vector<float>(d[i], j) * new Vector<float>(sw[i]); sum += x[i]; }
                Vector<float> m;
                if (consensus)
                {
                    var pos = Vector.GreaterThanOrEqual(sum, zero);
                    m = zero; var dw = zero;
                    for (int i = 0; i < k; i++)
                    {
                        var agree = Vector.ConditionalSelect(pos, Vector.GreaterThan(x[i], zero), Vector.LessThan(x[i], zero));
                        m = Vector.ConditionalSelect(agree, m + x[i], m);
                        dw = Vector.ConditionalSelect(agree, dw + new Vector<float>(w[i]), dw);
                    }
                    if (normalize) m /= Vector.ConditionalSelect(Vector.Equals(dw, zero), one, dw);
                }
                else
                {
                    m = sum;
                    if (divideBySum) m /= vws;
                }
                if (lambda != 1) m *= vl;
                (new Vector<float>(baseValues.Slice(j, vc)) + m).CopyTo(result.Slice(j, vc));
            }
        }
        for (; j < len; j++)
        {
            float sum = 0, m = 0, dw = 0;
            for (int i = 0; i < k; i++) sum += d[i][j] * sw[i];
            if (consensus)
            {
                float sign = sum >= 0 ? 1 : -1;
                for (int i = 0; i < k; i++)
                {
                    float x = d[i][j] * sw[i];
                    if (x != 0 && MathF.Sign(x) == sign) { m += x; dw += w[i]; }
                }
                if (normalize) m /= dw == 0 ? 1 : dw;
            }
            else
            {
                m = sum;
                if (divideBySum) m /= ws;
            }
            if (lambda != 1) m *= lambda;
            result[j] = baseValues[j] + m;
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
