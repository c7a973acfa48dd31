namespace Consort.Weights.Methods;

/// <summary>DARE linear: random drop with keep probability density, rescaled by 1/density (rescale defaults to true).</summary>
public sealed class DareLinearMerge : GeneralizedTaskArithmetic
{
    /// <inheritdoc />
    public override string Name => "dare_linear";
    /// <inheritdoc />
    protected override bool Consensus => false;
    /// <inheritdoc />
    protected override Sparsification Sparsify => Sparsification.Random;
    /// <inheritdoc />
    protected override bool DefaultNormalize => false;
}
