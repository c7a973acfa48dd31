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
        // One row for the whole tensor, or one per innermost row (filter_wise).
        long rowLen = job.Flag("filter_wise", false) ? Math.Max(1, job.RowLength) : job.Count;
        long rows = (job.Count + rowLen - 1) / rowLen;
        var dots = new double[rows, k, k];
        var b = job.Buffer(0);
        var d = Enumerable.Range(0, k).Select(i => job.Buffer(1 + i)).ToArray();
        // Calls visit(row, offset in chunk, length) for the row pieces of a chunk.
        static void Pieces(long start, int n, long rowLen, Action<long, int, int> visit)
        {
            for (long pos = start; pos < start + n;)
            {
                long row = pos / rowLen, end = Math.Min(start + n, (row + 1) * rowLen);
                visit(row, (int)(pos - start), (int)(end - pos));
                pos = end;
            }
        }
        foreach (var (s, n) in job.Chunks())
        {
            job.Read(job.BaseSource, s, b.AsSpan(0, n));
            for (int i = 0; i < k; i++)
            {
                job.Read(src[i], s, d[i].AsSpan(0, n));
                TensorPrimitives.Subtract(d[i].AsSpan(0, n), b.AsSpan(0, n), d[i].AsSpan(0, n));
            }
            Pieces(s, n, rowLen, (row, o, len) =>
            {
                for (int i = 0; i < k; i++)
                    for (int j = i; j < k; j++)
                        dots[row, i, j] += TensorPrimitives.Dot(d[i].AsSpan(o, len), d[j].AsSpan(o, len));
            });
        }
        var t = new double[rows];
        for (long r = 0; r < rows; r++)
        {
            double cosSum = 0;
            int pairs = 0;
            for (int i = 0; i < k; i++)
                for (int j = i + 1; j < k; j++)
                {
                    double norm = Math.Sqrt(dots[r, i, i]) * Math.Sqrt(dots[r, j, j]);
                    cosSum += Math.Clamp(dots[r, i, j] / Math.Max(norm, 1e-6), -1, 1);
                    pairs++;
                }
            t[r] = Ratio(k, cosSum / pairs);
        }
        foreach (var (s, n) in job.Chunks())
        {
            var bs = b.AsSpan(0, n); var avg = d[0].AsSpan(0, n);
            job.Read(job.BaseSource, s, bs);
            job.Read(src[0], s, avg);
            for (int i = 1; i < k; i++)
            {
                job.Read(src[i], s, d[1].AsSpan(0, n));
                TensorPrimitives.Add(avg, d[1].AsSpan(0, n), avg);
            }
            var avgArr = d[0]; var baseArr = b;
            Pieces(s, n, rowLen, (row, o, len) =>
            {
                var a = avgArr.AsSpan(o, len);
                TensorPrimitives.Multiply(a, (float)(t[row] / k), a);
                TensorPrimitives.MultiplyAdd(baseArr.AsSpan(o, len), (float)(1 - t[row]), a, a);
            });
            job.Emit(avg);
        }
    }
}
