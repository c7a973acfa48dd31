using System.Diagnostics;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;

namespace Consort.Methods;

/// <summary>
/// Base of the chat clients that methods build. A subclass answers one request by calling members
/// through <see cref="CallAsync"/>, which times each inner call and records it in the trace; the
/// returned response carries the trace, total usage and cost.
/// </summary>
public abstract class CollaborationChatClient(ModelDescriptor descriptor) : IChatClient
{
    /// <summary>The collaboration's descriptor.</summary>
    public ModelDescriptor Descriptor { get; } = descriptor;

    /// <summary>Answers one request; add every inner call to <paramref name="trace"/>.</summary>
    protected abstract Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken cancellationToken);

    /// <inheritdoc />
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var trace = new CallTrace();
        var list = messages as IReadOnlyList<ChatMessage> ?? messages.ToList();
        var response = await AnswerAsync(list, options, trace, cancellationToken).ConfigureAwait(false);
        response.ModelId ??= Descriptor.Name;
        return response.WithTrace(trace);
    }

    /// <summary>Streams the finished answer (collaborations decide before they speak).</summary>
    public virtual async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var response = await GetResponseAsync(messages, options, cancellationToken).ConfigureAwait(false);
        foreach (var update in response.ToChatResponseUpdates()) yield return update;
    }

    /// <summary>Calls a member, timing it and recording a trace entry (with the member's own inner trace nested).</summary>
    public static async Task<ChatResponse> CallAsync(ConsortModel member, IReadOnlyList<ChatMessage> messages, ChatOptions? options,
        CallTrace trace, string role, CancellationToken cancellationToken, Func<ChatResponse, Dictionary<string, object?>?>? data = null)
    {
        var sw = Stopwatch.StartNew();
        using var span = Consort.Telemetry.ConsortTelemetry.StartInnerCall(member.Descriptor, role);
        var response = await member.Chat.GetResponseAsync(messages, options, cancellationToken).ConfigureAwait(false);
        span.Complete(response);
        sw.Stop();
        trace.Add(response.ToTraceEntry(member.Descriptor, role, LastUserText(messages), sw.Elapsed, data?.Invoke(response)));
        return response;
    }

    /// <summary>The text of the last user message (for traces).</summary>
    public static string? LastUserText(IReadOnlyList<ChatMessage> messages) =>
        messages.LastOrDefault(m => m.Role == ChatRole.User)?.Text ?? messages.LastOrDefault()?.Text;

    /// <summary>A response holding <paramref name="text"/> as the assistant's answer.</summary>
    public static ChatResponse Answer(string text, string? finishReason = null) =>
        new(new ChatMessage(ChatRole.Assistant, text)) { FinishReason = finishReason is null ? ChatFinishReason.Stop : new ChatFinishReason(finishReason) };

    /// <summary>A response holding <paramref name="text"/>, recording which member answered (routers, cascades).</summary>
    public static ChatResponse AnswerFrom(string text, string member)
    {
        var r = Answer(text);
        r.AdditionalProperties = new() { [ConsortKeys.AnsweredBy] = member };
        return r;
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is null && serviceType.IsInstanceOfType(this) ? this : null;

    /// <inheritdoc />
    public virtual void Dispose() { }

    /// <summary>Runs <paramref name="work"/> over <paramref name="items"/> with at most <paramref name="parallelism"/> at once, keeping order.</summary>
    public static async Task<TResult[]> ParallelAsync<TItem, TResult>(IReadOnlyList<TItem> items, int parallelism,
        Func<TItem, int, CancellationToken, Task<TResult>> work, CancellationToken cancellationToken)
    {
        var results = new TResult[items.Count];
        await Parallel.ForAsync(0, items.Count, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, parallelism), CancellationToken = cancellationToken },
            async (i, ct) => results[i] = await work(items[i], i, ct).ConfigureAwait(false)).ConfigureAwait(false);
        return results;
    }
}
