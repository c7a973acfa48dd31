using Consort.Weights.Engine;

namespace Consort.Weights.Methods;

/// <summary>
/// mergekit's <c>ramplus_tl</c> (RAM+, tensor-local): as <see cref="RamMerge"/>, with each model's unique elements
/// scaled by λ = 1 + r·clamp(ρ, 0, alpha), where ρ is the model's shared / unique element counts in this tensor
/// (unique counted at least epsilon, as mergekit clamps it).
/// </summary>
public sealed class RamPlusTlMerge : RamMerge
{
    /// <inheritdoc />
    public override string Name => "ramplus_tl";
    /// <inheritdoc />
    public override IReadOnlyList<MergeParameterSpec> Parameters { get; } =
        [new("r", 0.1, false) { Min = 0 }, new("alpha", 0.2, false) { Min = 0 }, new("epsilon", 1e-5, false) { Min = 0 }];

    /// <inheritdoc />
    protected override float[] UniqueScales(TensorJob job, int[] sources, float epsilon)
    {
        double r = job.Global("r", 0.1), alpha = job.Global("alpha", 0.2);
        var (shared, unique) = Counts(job, sources, epsilon);
        return shared.Select((s, i) => (float)(1 + r * Math.Clamp(s / Math.Max(unique[i], (double)epsilon), 0, alpha))).ToArray();
    }
}
