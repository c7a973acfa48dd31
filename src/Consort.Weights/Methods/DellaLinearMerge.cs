namespace Consort.Weights.Methods;

/// <summary>DELLA without sign election: the pruned, rescaled task vectors are summed (normalize defaults to false).</summary>
public sealed class DellaLinearMerge : MagnitudeSampledTaskArithmetic
{
    /// <inheritdoc />
    public override string Name => "della_linear";
    /// <inheritdoc />
    protected override bool Consensus => false;
    /// <inheritdoc />
    protected override bool DefaultNormalize => false;
}
