using System.Numerics.Tensors;
using Consort.Weights.Engine;

namespace Consort.Weights.Methods;

/// <summary>
/// Model Stock: with the mean pairwise cosine c between the fine-tuned models' offsets from the base, the ratio
/// t = N c / (1 + (N - 1) c) interpolates between the models' average (t) and the base (1 - t). Per tensor,
/// flattened (mergekit's default, filter_wise = false), or per row of the innermost dimension (filter_wise = true;
/// a 1-D tensor is one row).
/// </summary>
public sealed class ModelStockMerge : IMergeMethod
{
    /// <inheritdoc />
    public string Name => "model_stock";
    /// <inheritdoc />
    public bool RequiresBase => true;
    /// <inheritdoc />
    public int MinModels => 2;
    /// <inheritdoc />
    public int MaxModels => int.MaxValue;
    /// <inheritdoc />
    public IReadOnlyList<MergeParameterSpec> Parameters { get; } = [new("filter_wise", false, false)];

    /// <summary>The interpolation ratio for N models with mean pairwise cosine <paramref name="cos"/>.</summary>
    public static double Ratio(int n, double cos) => n * cos / (1 + (n - 1) * cos);

    /// <inheritdoc />
    public void Merge(TensorJob job)
    {
        var src = job.NonBaseModels().Select(job.SourceOf).ToArray();
        int k = src.Length;
        int[] read = [.. src, job.BaseSource];
        // One row for the whole tensor, or one per innermost row (filter_wise); blocks hold whole rows, so each row's
        // Gram matrix is filled by the one block that holds it.
        bool filterWise = job.Flag("filter_wise", false);
        long rowLen = filterWise ? Math.Max(1, job.RowLength) : job.Count;
        long rows = (job.Count + rowLen - 1) / rowLen;
        var t = new double[rows];
        if (!filterWise) t[0] = RatioOf(GramPass.Compute(job, src, job.BaseSource), k);
        else
        {
            var dots = new double[rows * k * k];
            BlockPasses.Scan(job, read, rowLen, () => 0, (b, _) =>
            {
                for (int i = 0; i < k; i++) TensorPrimitives.Subtract(b.In(i), b.In(k), b.In(i));
                for (int r0 = 0; r0 < b.Length; r0 += (int)rowLen)
                {
                    long at = (b.Start + r0) / rowLen * k * k;
                    for (int i = 0; i < k; i++)
                        for (int j = i; j < k; j++)
                            dots[at + i * k + j] = dots[at + j * k + i] = VectorMath.Dot(b.In(i).Slice(r0, (int)rowLen), b.In(j).Slice(r0, (int)rowLen));
                }
            }, _ => { });
            for (long r = 0; r < rows; r++)
            {
                var g = new double[k, k];
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++) g[i, j] = dots[(r * k + i) * k + j];
                t[r] = RatioOf(g, k);
            }
        }
        // Σ models · t/k + base · (1 − t), row by row.
        BlockPasses.Map(job, read, filterWise ? rowLen : 1, b =>
        {
            var o = b.Out;
            b.In(0).CopyTo(o);
            for (int i = 1; i < k; i++) TensorPrimitives.Add(o, b.In(i), o);
            int len = filterWise ? (int)rowLen : b.Length;
            for (int r0 = 0; r0 < b.Length; r0 += len)
            {
                double tr = t[filterWise ? (b.Start + r0) / rowLen : 0];
                var a = o.Slice(r0, len);
                TensorPrimitives.Multiply(a, (float)(tr / k), a);
                TensorPrimitives.MultiplyAdd(b.In(k).Slice(r0, len), (float)(1 - tr), a, a);
            }
        });
    }

    // t from the mean pairwise cosine of the offsets' Gram matrix.
    private static double RatioOf(double[,] g, int k)
    {
        double cosSum = 0;
        int pairs = 0;
        for (int i = 0; i < k; i++)
            for (int j = i + 1; j < k; j++)
            {
                double norm = Math.Sqrt(g[i, i]) * Math.Sqrt(g[j, j]);
                cosSum += Math.Clamp(g[i, j] / Math.Max(norm, 1e-6), -1, 1);
                pairs++;
            }
        return Ratio(k, cosSum / pairs);
    }
}
