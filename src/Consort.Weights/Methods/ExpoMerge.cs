using System.Numerics.Tensors;
using Consort.Weights.Engine;

namespace Consort.Weights.Methods;

/// <summary>
/// ExPO (model extrapolation, Zheng et al. 2024): w = w_t + alpha (w_t - w_s), with base_model the weaker w_s
/// (e.g. the SFT checkpoint) and the one model the stronger w_t. Not a mergekit method; alpha defaults to 0.5.
/// </summary>
public sealed class ExpoMerge : IMergeMethod
{
    /// <inheritdoc />
    public string Name => "expo";
    /// <inheritdoc />
    public bool RequiresBase => true;
    /// <inheritdoc />
    public int MinModels => 1;
    /// <inheritdoc />
    public int MaxModels => 1;
    /// <inheritdoc />
    public IReadOnlyList<MergeParameterSpec> Parameters { get; } = [new("alpha", 0.5, false)];

    /// <inheritdoc />
    public void Merge(TensorJob job)
    {
        float alpha = (float)job.Global("alpha", 0.5);
        int other = job.SourceOf(job.NonBaseModels().First());
        BlockPasses.Map(job, [job.BaseSource, other], 1, b =>
        {
            // (1 + alpha) w_t - alpha w_s
            TensorPrimitives.Multiply(b.In(0), -alpha, b.Out);
            TensorPrimitives.MultiplyAdd(b.In(1), 1 + alpha, b.Out, b.Out);
        });
    }
}
