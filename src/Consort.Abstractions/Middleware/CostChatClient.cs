using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;

namespace Consort.Middleware;

/// <summary>
/// Prices every response of a model from its usage and the model's per-million prices (when it has prices and the
/// response carries no cost yet), on non-streaming responses and on the streamed update that carries the usage.
/// </summary>
public sealed class CostChatClient(IChatClient inner, ModelDescriptor descriptor) : DelegatingChatClient(inner)
{
    /// <inheritdoc />
    public override async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var r = await base.GetResponseAsync(messages, options, cancellationToken).ConfigureAwait(false);
        if (r.GetCost() is null && r.Usage is { } u && descriptor.CostOf(u.InputTokenCount ?? 0, u.OutputTokenCount ?? 0) is { } cost)
        {
            r.AdditionalProperties ??= new();
            r.AdditionalProperties[ConsortKeys.Cost] = cost;
        }
        return r;
    }

    /// <inheritdoc />
    public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var update in base.GetStreamingResponseAsync(messages, options, cancellationToken).ConfigureAwait(false))
        {
            if (update.Contents.OfType<UsageContent>().FirstOrDefault() is { } usage &&
                update.AdditionalProperties?.ContainsKey(ConsortKeys.Cost) != true &&
                descriptor.CostOf(usage.Details.InputTokenCount ?? 0, usage.Details.OutputTokenCount ?? 0) is { } cost)
            {
                update.AdditionalProperties ??= new();
                update.AdditionalProperties[ConsortKeys.Cost] = cost;
            }
            yield return update;
        }
    }
}

/// <summary><c>Use...</c> extensions for Consort's chat-client middleware.</summary>
public static class ConsortChatClientBuilderExtensions
{
    /// <summary>Adds <see cref="CostChatClient"/>: responses get a cost from the model's prices.</summary>
    public static ChatClientBuilder UseConsortCost(this ChatClientBuilder builder, ModelDescriptor descriptor) =>
        builder.Use(inner => new CostChatClient(inner, descriptor));
}
