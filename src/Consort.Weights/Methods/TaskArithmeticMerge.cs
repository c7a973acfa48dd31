namespace Consort.Weights.Methods;

/// <summary>Task arithmetic: base + lambda GeneralizedTaskArithmetic.cs IMergeMethod.cs LinearMerge.cs sum(weight_i GeneralizedTaskArithmetic.cs IMergeMethod.cs LinearMerge.cs (x_i - base)); normalize defaults to false.</summary>
public sealed class TaskArithmeticMerge : GeneralizedTaskArithmetic
{
    /// <inheritdoc />
    public override string Name => "task_arithmetic";
    /// <inheritdoc />
    protected override bool Consensus => false;
    /// <inheritdoc />
    protected override Sparsification Sparsify => Sparsification.None;
    /// <inheritdoc />
    protected override bool DefaultNormalize => false;
}
