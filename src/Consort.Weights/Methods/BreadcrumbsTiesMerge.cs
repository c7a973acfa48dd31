namespace Consort.Weights.Methods;

/// <summary>Model breadcrumbs with TIES sign election.</summary>
public sealed class BreadcrumbsTiesMerge : GeneralizedTaskArithmetic
{
    /// <inheritdoc />
    public override string Name => "breadcrumbs_ties";
    /// <inheritdoc />
    protected override bool Consensus => true;
    /// <inheritdoc />
    protected override Sparsification Sparsify => Sparsification.MagnitudeOutliers;
    /// <inheritdoc />
    protected override bool DefaultNormalize => false;
}
