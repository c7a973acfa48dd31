using System.Numerics.Tensors;
using Consort.Weights.Engine;

namespace Consort.Weights.Methods;

/// <summary>
/// mergekit's passthrough: the one model's tensor as it is (optionally times <c>scale</c>). With <c>slices</c> it
/// stacks layer ranges of models into a new model ("frankenmerge"); F16/F32 values come through bit for bit.
/// </summary>
public sealed class PassthroughMerge : IMergeMethod
{
    /// <inheritdoc />
    public string Name => "passthrough";
    /// <inheritdoc />
    public bool RequiresBase => false;
    /// <inheritdoc />
    public int MinModels => 1;
    /// <inheritdoc />
    public int MaxModels => 1;
    /// <inheritdoc />
    public IReadOnlyList<MergeParameterSpec> Parameters { get; } = [new("scale", 1.0, true)];

    /// <inheritdoc />
    public void Merge(TensorJob job)
    {
        int model = job.NonBaseModels().Concat(Enumerable.Range(0, job.ModelCount)).First();
        float scale = (float)job.ModelParam(model, "scale", 1.0);
        int src = job.SourceOf(model);
        BlockPasses.Map(job, [src], 1, b =>
        {
            if (scale != 1) TensorPrimitives.Multiply(b.In(0), scale, b.Out);
            else b.In(0).CopyTo(b.Out);
        });
    }
}
