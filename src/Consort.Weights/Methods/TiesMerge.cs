namespace Consort.Weights.Methods;

/// <summary>TIES: magnitude trimming to density, sign election by sum, disjoint mean (normalize defaults to true).</summary>
public sealed class TiesMerge : GeneralizedTaskArithmetic
{
    /// <inheritdoc />
    public override string Name => "ties";
    /// <inheritdoc />
    protected override bool Consensus => true;
    /// <inheritdoc />
    protected override Sparsification Sparsify => Sparsification.Magnitude;
    /// <inheritdoc />
    protected override bool DefaultNormalize => true;
}
