namespace Consort.Weights.Methods;

/// <summary>Model breadcrumbs: drop the largest gamma fraction and the smallest so that density of each task vector remains.</summary>
public sealed class BreadcrumbsMerge : GeneralizedTaskArithmetic
{
    /// <inheritdoc />
    public override string Name => "breadcrumbs";
    /// <inheritdoc />
    protected override bool Consensus => false;
    /// <inheritdoc />
    protected override Sparsification Sparsify => Sparsification.MagnitudeOutliers;
    /// <inheritdoc />
    protected override bool DefaultNormalize => false;
}
