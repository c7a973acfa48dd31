namespace Consort.Weights.Methods;

/// <summary>DELLA: magnitude-ranked sampling of task vectors with TIES sign election (normalize defaults to true).</summary>
public sealed class DellaMerge : MagnitudeSampledTaskArithmetic
{
    /// <inheritdoc />
    public override string Name => "della";
    /// <inheritdoc />
    protected override bool Consensus => true;
    /// <inheritdoc />
    protected override bool DefaultNormalize => true;
}
