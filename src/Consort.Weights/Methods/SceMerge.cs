using System.Numerics;
using System.Numerics.Tensors;
using Consort.Weights.Engine;

namespace Consort.Weights.Methods;

/// <summary>
/// mergekit's <c>sce</c> (select, calculate, erase; FuseChat): with <c>select_topk</c> &lt; 1, only the positions
/// whose task-vector variance across the models is among the top share of the positions with nonzero variance are
/// kept; each model's weight is the mean square of its (masked) task vector over the tensor, normalized to sum 1
/// (uniform when they sum to ~0); signs are elected by the sum (TIES) and the agreeing, weighted task vectors are
/// averaged by their weights and added to the base.
/// </summary>
public sealed class SceMerge : IMergeMethod
{
    /// <inheritdoc />
    public string Name => "sce";
    /// <inheritdoc />
    public bool RequiresBase => true;
    /// <inheritdoc />
    public int MinModels => 1;
    /// <inheritdoc />
    public int MaxModels => int.MaxValue;
    /// <inheritdoc />
    public IReadOnlyList<MergeParameterSpec> Parameters { get; } =
        [new("select_topk", 1.0, false) { Min = 0, Max = 1 }, new("int8_mask", false, false)];

    /// <summary>Population variance across the models of each position's task-vector values (<paramref name="d"/>[i][j]).</summary>
    private static void Variance(float[][] d, int k, int n, Span<float> var)
    {
        int j = 0;
        if (Vector.IsHardwareAccelerated)
        {
            // The scalar loop's float operations per lane.
            int vc = Vector<float>.Count;
            var vk = new Vector<float>(k);
            for (; j <= n - vc; j += vc)
            {
                var mean = Vector<float>.Zero;
                for (int i = 0; i < k; i++) mean += new Vector<float>(d[i], j);
                mean /= vk;
                var v = Vector<float>.Zero;
                for (int i = 0; i < k; i++) { var x = new Vector<float>(d[i], j) - mean; v += x * x; }
                (v / vk).CopyTo(var.Slice(j, vc));
            }
        }
        for (; j < n; j++)
        {
            float mean = 0;
            for (int i = 0; i < k; i++) mean += d[i][j];
            mean /= k;
            float v = 0;
            for (int i = 0; i < k; i++) { float x = d[i][j] - mean; v += x * x; }
            var[j] = v / k;
        }
    }

    /// <inheritdoc />
    public void Merge(TensorJob job)
    {
        var src = job.NonBaseModels().Select(job.SourceOf).ToArray();
        int k = src.Length;
        double topk = job.Global("select_topk", 1.0);
        int[] sources = [.. src, job.BaseSource];
        (float[][] D, float[] Var) NewScratch()
        {
            int n = BlockPasses.BlockLength(job, 1);
            return (Enumerable.Range(0, k).Select(_ => new float[n]).ToArray(), new float[n]);
        }
        void Deltas(Block b, float[][] d)
        {
            for (int i = 0; i < k; i++) TensorPrimitives.Subtract(b.In(i), b.In(k), d[i].AsSpan(0, b.Length));
        }
        using var scratch = new ThreadLocal<(float[][], float[])>(NewScratch);

        // Select: the top share of positions by variance (exact top-k; ties at the threshold go to the first in order).
        TopKSelector? select = null;
        long[]? quotas = null;
        if (topk < 1)
        {
            long nonzero = 0;
            BlockPasses.Scan(job, sources, 1, () => new long[1], (b, part) =>
            {
                var s = scratch.Value!;
                Deltas(b, s.Item1);
                Variance(s.Item1, k, b.Length, s.Item2);
                for (int j = 0; j < b.Length; j++) if (s.Item2[j] != 0) part[0]++;
            }, part => nonzero += part[0]);
            long keep = topk <= 0 ? 0 : (long)(nonzero * topk);
            select = TopKSelector.Build(keep, job.Count, visit =>
            {
                var s = NewScratch();
                var bufs = sources.Select(_ => new float[s.Item2.Length]).ToArray();
                for (long start = 0; start < job.Count; start += s.Item2.Length)
                {
                    int n = (int)Math.Min(s.Item2.Length, job.Count - start);
                    for (int i = 0; i < sources.Length; i++) job.Read(sources[i], start, bufs[i].AsSpan(0, n));
                    for (int i = 0; i < k; i++) TensorPrimitives.Subtract(bufs[i].AsSpan(0, n), bufs[k].AsSpan(0, n), s.Item1[i].AsSpan(0, n));
                    Variance(s.Item1, k, n, s.Item2);
                    visit(s.Item2.AsSpan(0, n));
                }
            });
            if (select.Partial)
            {
                // Each block starts with the tie quota the blocks before it left.
                var ties = new List<long>();
                uint threshold = select.Threshold;
                BlockPasses.Scan(job, sources, 1, () => new long[1], (b, part) =>
                {
                    var s = scratch.Value!;
                    Deltas(b, s.Item1);
                    Variance(s.Item1, k, b.Length, s.Item2);
                    for (int j = 0; j < b.Length; j++) if (TopKSelector.MagnitudeBits(s.Item2[j]) == threshold) part[0]++;
                }, part => ties.Add(part[0]));
                quotas = new long[ties.Count];
                long left = select.EqualQuota;
                for (int b = 0; b < ties.Count; b++) { quotas[b] = left; left = Math.Max(0, left - ties[b]); }
            }
        }
        // Masked task vectors of a block (in s.D).
        void Masked(Block b, (float[][] D, float[] Var) s)
        {
            Deltas(b, s.D);
            if (select is null) return;
            Variance(s.D, k, b.Length, s.Var);
            long q = quotas?[b.Index] ?? 0;
            for (int j = 0; j < b.Length; j++)
                if (!select.Keep(s.Var[j], ref q))
                    for (int i = 0; i < k; i++) s.D[i][j] = 0;
        }

        // Calculate: weights from the mean squares of the masked task vectors.
        var squares = new double[k];
        BlockPasses.Scan(job, sources, 1, () => new double[k], (b, part) =>
        {
            var s = scratch.Value!;
            Masked(b, s);
            for (int i = 0; i < k; i++) part[i] = VectorMath.SumSquares(s.Item1[i].AsSpan(0, b.Length));
        }, part => { for (int i = 0; i < k; i++) squares[i] += part[i]; });
        var means = squares.Select(x => x / job.Count).ToArray();
        double total = means.Sum();
        var w = means.Select(x => (float)(Math.Abs(total) < 1e-6 ? 1.0 / k : x / total)).ToArray();

        // Erase: sign election by sum; the agreeing task vectors averaged by their weights.
        BlockPasses.Map(job, sources, 1, NewScratch, (b, s) =>
        {
            Masked(b, s);
            var bs = b.In(k); var o = b.Out;
            int j = 0;
            if (Vector.IsHardwareAccelerated)
            {
                // The scalar loop's float operations per lane (agreeing: nonzero with the sum's sign, zero sum positive).
                int vc = Vector<float>.Count;
                var zero = Vector<float>.Zero; var tiny = new Vector<float>(1e-6f);
                for (; j <= b.Length - vc; j += vc)
                {
                    var sum = zero;
                    for (int i = 0; i < k; i++) sum += new Vector<float>(s.D[i], j);
                    var pos = Vector.GreaterThanOrEqual(sum, zero);
                    Vector<float> mixed = zero, div = zero;
                    for (int i = 0; i < k; i++)
                    {
                        var x = new Vector<float>(s.D[i], j); var wi = new Vector<float>(w[i]);
                        var agree = Vector.ConditionalSelect(pos, Vector.GreaterThan(x, zero), Vector.LessThan(x, zero));
                        mixed = Vector.ConditionalSelect(agree, mixed + x * wi, mixed);
                        div = Vector.ConditionalSelect(agree, div + wi, div);
                    }
                    (new Vector<float>(bs.Slice(j, vc)) + mixed / Vector.ConditionalSelect(Vector.LessThan(div, tiny), tiny, div)).CopyTo(o.Slice(j, vc));
                }
            }
            for (; j < b.Length; j++)
            {
                float sum = 0;
                for (int i = 0; i < k; i++) sum += s.D[i][j];
                float sign = sum >= 0 ? 1 : -1, mixed = 0, div = 0;
                for (int i = 0; i < k; i++)
                {
                    float x = s.D[i][j];
                    if (x != 0 && MathF.Sign(x) == sign) { mixed += x * w[i]; div += w[i]; }
                }
                o[j] = bs[j] + mixed / Math.Max(div, 1e-6f);
            }
        });
    }
}
