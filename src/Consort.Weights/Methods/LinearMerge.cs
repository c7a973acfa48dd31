using System.Numerics.Tensors;
using Consort.Weights.Engine;

namespace Consort.Weights.Methods;

/// <summary>Linear (model soup): sum of weight_i * x_i, divided by the sum of weights when normalize (default true).</summary>
public sealed class LinearMerge : IMergeMethod
{
    /// <inheritdoc />
    public string Name => "linear";
    /// <inheritdoc />
    public bool RequiresBase => false;
    /// <inheritdoc />
    public int MinModels => 1;
    /// <inheritdoc />
    public int MaxModels => int.MaxValue;
    /// <inheritdoc />
    public IReadOnlyList<MergeParameterSpec> Parameters { get; } = [new("weight", null, true), new("normalize", true, false)];

    /// <inheritdoc />
    public void Merge(TensorJob job)
    {
        var w = Enumerable.Range(0, job.ModelCount).Select(m => (float)job.ModelParam(m, "weight", null)).ToArray();
        bool normalize = job.Flag("normalize", true);
        float sum = w.Sum();
        var acc = job.Buffer(0); var x = job.Buffer(1);
        foreach (var (s, n) in job.Chunks())
        {
            var a = acc.AsSpan(0, n);
            a.Clear();
            for (int m = 0; m < job.ModelCount; m++)
            {
                job.Read(job.SourceOf(m), s, x.AsSpan(0, n));
                TensorPrimitives.MultiplyAdd(x.AsSpan(0, n), w[m], a, a);
            }
            if (normalize) TensorPrimitives.Divide(a, sum, a);
            job.Emit(a);
        }
    }
}
