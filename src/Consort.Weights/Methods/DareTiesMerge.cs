namespace Consort.Weights.Methods;

/// <summary>DARE TIES: random drop with rescale by 1/density, then TIES sign election.</summary>
public sealed class DareTiesMerge : GeneralizedTaskArithmetic
{
    /// <inheritdoc />
    public override string Name => "dare_ties";
    /// <inheritdoc />
    protected override bool Consensus => true;
    /// <inheritdoc />
    protected override Sparsification Sparsify => Sparsification.Random;
    /// <inheritdoc />
    protected override bool DefaultNormalize => false;
}
