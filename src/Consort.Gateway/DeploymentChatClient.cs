using Microsoft.Extensions.AI;

namespace Consort.Gateway;

/// <summary>
/// Sends each call to one of a model's deployments (<see cref="DeploymentPool.Order"/>: routing strategy, cooling
/// deployments last); a failed attempt moves to the next deployment, up to <see cref="GatewayOptions.Retries"/> more
/// attempts; a stream cut or stalled part-way continues on the next deployment from the text already sent.
/// Failures of the request itself (4xx) are not retried; a context-window overflow is left to the model's fallbacks.
/// </summary>
public sealed class DeploymentChatClient : DelegatingChatClient
{
    /// <summary>Wraps <paramref name="inner"/> (used for <see cref="GetService"/>); calls go to <paramref name="pool"/>.</summary>
    public DeploymentChatClient(IChatClient inner, DeploymentPool pool) : base(inner)
    {
        Pool = pool;
    }

    /// <summary>The deployments and their health.</summary>
    public DeploymentPool Pool { get; }

    /// <inheritdoc />
    public override Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        Failover.GetResponseAsync(Pool.Model, Candidates(), messages, options, Pool.Options.AttemptTimeout, Pool.Options.Log, cancellationToken);

    /// <inheritdoc />
    public override IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default) =>
        Failover.StreamAsync(Pool.Model, Candidates(), messages as IReadOnlyList<ChatMessage> ?? [.. messages], options, Pool.Options.StreamStall, Pool.Options.Log, cancellationToken);

    // Each call ranks the deployments once; attempts walk that ranking.
    private Func<FailureKind?, Candidate?> Candidates()
    {
        List<int>? order = null;
        int attempt = 0;
        int attempts = Pool.Options.Retries is { } r ? r + 1 : Pool.Deployments.Count;
        return last =>
        {
            if (last == FailureKind.ContextWindow) return null; // every deployment serves the same model
            order ??= Pool.Order();
            if (attempt >= attempts) return null;
            // More attempts than deployments go round again (a deployment may be back after a transient failure).
            int i = order[attempt % order.Count];
            attempt++;
            var d = Pool.Deployments[i];
            return new Candidate(d.Name, d.Client,
                latency => Pool.Succeeded(i, latency),
                (kind, e) => Pool.Failed(i, kind, e),
                Pool.Begin(i));
        };
    }
}

/// <summary>
/// Falls back to other models when the inner model fails: <c>fallbacks</c> on errors, timeouts and rate limits,
/// <c>context_window_fallbacks</c> (else the plain fallbacks) when the prompt does not fit. Streams continue on the
/// fallback from the text already sent. Bad requests (4xx) are not retried.
/// </summary>
public sealed class ModelFallbackChatClient : DelegatingChatClient
{
    private readonly string _model;
    private readonly IReadOnlyList<(string Name, IChatClient Client)> _fallbacks;
    private readonly IReadOnlyList<(string Name, IChatClient Client)> _contextFallbacks;
    private readonly GatewayOptions _options;

    /// <summary>Wraps <paramref name="inner"/>, the model <paramref name="model"/>.</summary>
    public ModelFallbackChatClient(IChatClient inner, string model, IReadOnlyList<(string Name, IChatClient Client)> fallbacks,
        IReadOnlyList<(string Name, IChatClient Client)> contextWindowFallbacks, GatewayOptions options) : base(inner)
    {
        _model = model; _fallbacks = fallbacks; _contextFallbacks = contextWindowFallbacks; _options = options;
    }

    /// <inheritdoc />
    public override Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        Failover.GetResponseAsync(_model, Candidates(), messages, options, null, _options.Log, cancellationToken);

    /// <inheritdoc />
    public override IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default) =>
        Failover.StreamAsync(_model, Candidates(), messages as IReadOnlyList<ChatMessage> ?? [.. messages], options, null, _options.Log, cancellationToken);

    private Func<FailureKind?, Candidate?> Candidates()
    {
        bool first = true;
        var tried = new HashSet<string>(StringComparer.Ordinal);
        return last =>
        {
            if (first) { first = false; return new Candidate(_model, InnerClient); }
            var list = last == FailureKind.ContextWindow && _contextFallbacks.Count > 0 ? _contextFallbacks : _fallbacks;
            foreach (var (name, client) in list)
            {
                if (!tried.Add(name)) continue;
                GatewayMetrics.Fallback(_model, name, (last ?? FailureKind.Error).Name());
                _options.Log?.Invoke($"model '{_model}': falling back to '{name}' ({(last ?? FailureKind.Error).Name()})");
                return new Candidate(name, client);
            }
            return null;
        };
    }
}

/// <summary><see cref="ChatClientBuilder"/> extensions for the gateway middleware.</summary>
public static class GatewayChatClientBuilderExtensions
{
    /// <summary>Routes calls over <paramref name="pool"/>'s deployments, with retries, cooldowns and streams that continue elsewhere.</summary>
    public static ChatClientBuilder UseDeployments(this ChatClientBuilder builder, DeploymentPool pool) =>
        builder.Use(inner => new DeploymentChatClient(inner, pool));

    /// <summary>Falls back to other models on failure (see <see cref="ModelFallbackChatClient"/>).</summary>
    public static ChatClientBuilder UseModelFallbacks(this ChatClientBuilder builder, string model, IReadOnlyList<(string Name, IChatClient Client)> fallbacks,
        IReadOnlyList<(string Name, IChatClient Client)>? contextWindowFallbacks = null, GatewayOptions? options = null) =>
        builder.Use(inner => new ModelFallbackChatClient(inner, model, fallbacks, contextWindowFallbacks ?? [], options ?? new GatewayOptions()));
}
