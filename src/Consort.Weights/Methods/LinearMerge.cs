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
        var sources = Enumerable.Range(0, job.ModelCount).Select(job.SourceOf).ToArray();
        BlockPasses.Map(job, sources, 1, b =>
        {
            var a = b.Out;
            a.Clear();
            for (int m = 0; m < sources.Length; m++) TensorPrimitives.MultiplyAdd(b.In(m), w[m], a, a);
            if (normalize) TensorPrimitives.Divide(a, sum, a);
        });
    }
}
