using System.Numerics.Tensors;
using Consort.Weights.Engine;

namespace Consort.Weights.Methods;

/// <summary>
/// Model Stock: with the mean pairwise cosine c between the fine-tuned models' offsets from the base, the ratio
/// t = N c / (1 + (N - 1) c) interpolates between the models' average (t) and the base (1 - t). Per tensor,
/// flattened (mergekit's filter_wise = false; filter_wise = true, per row, is not supported).
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
        if (job.Flag("filter_wise", false)) throw new ConfigException("model_stock: filter_wise = true is not supported");
        var src = job.NonBaseModels().Select(job.SourceOf).ToArray();
        int k = src.Length;
        var dots = new double[k, k];
        var b = job.Buffer(0);
        var d = Enumerable.Range(0, k).Select(i => job.Buffer(1 + i)).ToArray();
        foreach (var (s, n) in job.Chunks())
        {
            job.Read(job.BaseSource, s, b.AsSpan(0, n));
            for (int i = 0; i < k; i++)
            {
                job.Read(src[i], s, d[i].AsSpan(0, n));
                TensorPrimitives.Subtract(d[i].AsSpan(0, n), b.AsSpan(0, n), d[i].AsSpan(0, n));
            }
            for (int i = 0; i < k; i++)
                for (int j = i; j < k; j++)
                    dots[i, j] += TensorPrimitives.Dot(d[i].AsSpan(0, n), d[j].AsSpan(0, n));
        }
        double cosSum = 0;
        int pairs = 0;
        for (int i = 0; i < k; i++)
            for (int j = i + 1; j < k; j++)
            {
                double norm = Math.Sqrt(dots[i, i]) * Math.Sqrt(dots[j, j]);
                cosSum += Math.Clamp(dots[i, j] / Math.Max(norm, 1e-6), -1, 1);
                pairs++;
            }
        double t = Ratio(k, cosSum / pairs);
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
            TensorPrimitives.Multiply(avg, (float)(t / k), avg);
            TensorPrimitives.MultiplyAdd(bs, (float)(1 - t), avg, avg);
            job.Emit(avg);
        }
    }
}
