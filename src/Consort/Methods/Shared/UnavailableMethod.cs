namespace Consort.Methods;

/// <summary>
/// Base of the MoCo methods Consort knows by name but does not run (they train the members): its options accept MoCo's
/// keys, and validation refuses the run before any work with <see cref="Reason"/>.
/// </summary>
/// <typeparam name="TOptions">MoCo's hyperparameters.</typeparam>
public abstract class UnavailableMethod<TOptions> : CollaborationMethod<TOptions> where TOptions : MethodOptions, new()
{
    /// <summary>Why the method is not available and what to use instead.</summary>
    protected abstract string Reason { get; }

    /// <inheritdoc />
    protected sealed override void Validate(TOptions options, MethodPlan plan) => throw plan.Error("is not available in Consort: " + Reason);

    /// <inheritdoc />
    protected sealed override Task<ConsortModel> CreateAsync(MethodContext context, TOptions options, CancellationToken cancellationToken) =>
        throw new ConfigException($"{Name} is not available in Consort");
}
