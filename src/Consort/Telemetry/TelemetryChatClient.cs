using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;

namespace Consort.Telemetry;

/// <summary>
/// Opens a span for each call to a collaboration, tagged with its method, so the inner-call spans that
/// <c>CollaborationChatClient.CallAsync</c> starts nest under it and name the method (also for nested collaborations).
/// </summary>
public sealed class TelemetryChatClient(IChatClient inner, ModelDescriptor descriptor, string? method) : DelegatingChatClient(inner)
{
    /// <inheritdoc />
    public override async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        using var call = ConsortTelemetry.StartCall(descriptor, method, "collaborate");
        var response = await base.GetResponseAsync(messages, options, cancellationToken).ConfigureAwait(false);
        call.Complete(response);
        return response;
    }

    /// <inheritdoc />
    public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        using var call = ConsortTelemetry.StartCall(descriptor, method, "collaborate");
        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in base.GetStreamingResponseAsync(messages, options, cancellationToken).ConfigureAwait(false))
        {
            updates.Add(u);
            yield return u;
        }
        call.Complete(updates.ToChatResponse());
    }
}

/// <summary>Builder extension.</summary>
public static class TelemetryChatClientBuilderExtensions
{
    /// <summary>Adds a <see cref="TelemetryChatClient"/> span around each call.</summary>
    public static ChatClientBuilder UseConsortTelemetry(this ChatClientBuilder builder, ModelDescriptor descriptor, string? method) =>
        builder.Use(inner => new TelemetryChatClient(inner, descriptor, method));
}
