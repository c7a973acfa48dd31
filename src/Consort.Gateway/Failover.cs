using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Text;
using Microsoft.Extensions.AI;

namespace Consort.Gateway;

/// <summary>One place a call may go: a deployment or a fallback model.</summary>
/// <param name="Name">Name in messages and metrics.</param>
/// <param name="Client">Where the call goes.</param>
/// <param name="Succeeded">Told the latency when the attempt succeeds.</param>
/// <param name="Failed">Told the failure when it does not.</param>
/// <param name="Lease">Released when the attempt ends (in-flight counts).</param>
internal sealed record Candidate(string Name, IChatClient Client, Action<TimeSpan>? Succeeded = null, Action<FailureKind, Exception>? Failed = null, IDisposable? Lease = null);

/// <summary>
/// Runs one call over a sequence of candidates: the next is asked for after each failure (with the failure's kind, so
/// a source can pick context-window fallbacks or stop). A stream that fails part-way continues on the next candidate
/// from the text already sent (<see cref="Continuation"/>); a stream that stalls or ends without a finish reason is a
/// failure. When no candidate is left the call ends with a <see cref="GatewayExhaustedException"/> naming every attempt.
/// </summary>
internal static class Failover
{
    /// <summary>Longest wait for a stalled attempt to notice its cancellation before it is abandoned.</summary>
    private static readonly TimeSpan AbandonAfter = TimeSpan.FromSeconds(5);

    public static async Task<ChatResponse> GetResponseAsync(string model, Func<FailureKind?, Candidate?> next, IEnumerable<ChatMessage> messages,
        ChatOptions? options, TimeSpan? attemptTimeout, Action<string>? log, CancellationToken ct)
    {
        var errors = new List<string>();
        FailureKind? last = null;
        Exception? lastError = null;
        while (next(last) is { } c)
        {
            using var attemptCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            if (attemptTimeout is { } t) attemptCts.CancelAfter(t);
            var sw = Stopwatch.StartNew();
            try
            {
                var r = await c.Client.GetResponseAsync(messages, options, attemptCts.Token).ConfigureAwait(false);
                c.Succeeded?.Invoke(sw.Elapsed);
                return r;
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                var kind = attemptCts.IsCancellationRequested ? FailureKind.Timeout : GatewayErrors.Classify(e);
                c.Failed?.Invoke(kind, e);
                if (kind == FailureKind.BadRequest) throw;
                errors.Add($"{c.Name}: {Describe(kind, e, attemptTimeout)}");
                log?.Invoke($"model '{model}': '{c.Name}' failed ({kind.Name()}): {e.Message}");
                (last, lastError) = (kind, e);
            }
            finally
            {
                c.Lease?.Dispose();
            }
        }
        throw Exhausted(model, errors, last, lastError);
    }

    public static async IAsyncEnumerable<ChatResponseUpdate> StreamAsync(string model, Func<FailureKind?, Candidate?> next, IReadOnlyList<ChatMessage> messages,
        ChatOptions? options, TimeSpan? stall, Action<string>? log, [EnumeratorCancellation] CancellationToken ct)
    {
        var sent = new StringBuilder();
        int pieces = 0;
        var errors = new List<string>();
        FailureKind? last = null;
        Exception? lastError = null;
        while (next(last) is { } c)
        {
            var attemptMessages = sent.Length == 0 ? messages : Continuation.Messages(messages, sent.ToString());
            var attemptOptions = pieces == 0 ? options : Continuation.Options(options, pieces);
            if (pieces > 0 && attemptOptions is null)
            {
                // The token budget was spent before the cut: the answer is complete as far as the client asked.
                c.Lease?.Dispose();
                yield return new ChatResponseUpdate { Role = ChatRole.Assistant, FinishReason = ChatFinishReason.Length };
                yield break;
            }
            using var attemptCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var sw = Stopwatch.StartNew();
            bool finished = false;
            Exception? failure = null;
            IAsyncEnumerator<ChatResponseUpdate>? e = null;
            Task<bool>? pending = null;
            try
            {
                e = c.Client.GetStreamingResponseAsync(attemptMessages, attemptOptions, attemptCts.Token).GetAsyncEnumerator(attemptCts.Token);
                while (true)
                {
                    pending = SafeMoveNext(e);
                    var (more, error) = await AwaitStep(pending, stall, c.Name, ct).ConfigureAwait(false);
                    if (error is not null) { failure = error; break; }
                    pending = null;
                    if (!more) break;
                    var u = e.Current;
                    if (u.FinishReason is not null) finished = true;
                    string text = u.Text;
                    if (text.Length > 0) { sent.Append(text); pieces++; }
                    yield return u;
                }
            }
            finally
            {
                if (e is not null) await Release(e, pending, attemptCts).ConfigureAwait(false);
                c.Lease?.Dispose();
            }
            if (failure is null && !finished && !ct.IsCancellationRequested)
                failure = new UpstreamStreamException($"the stream from '{c.Name}' ended without a finish reason", stalled: false);
            if (failure is null) { c.Succeeded?.Invoke(sw.Elapsed); yield break; }
            ct.ThrowIfCancellationRequested();
            var kind = GatewayErrors.Classify(failure);
            c.Failed?.Invoke(kind, failure);
            if (kind == FailureKind.BadRequest && pieces == 0) ExceptionDispatchInfo.Throw(failure);
            errors.Add($"{c.Name}: {failure.Message}");
            log?.Invoke($"model '{model}': stream from '{c.Name}' failed ({kind.Name()}) after {sent.Length} characters: {failure.Message}");
            GatewayMetrics.StreamFailure(model, c.Name, failure is UpstreamStreamException { Stalled: true } ? "stall" : failure is UpstreamStreamException ? "cut" : kind.Name());
            (last, lastError) = (kind, failure);
            if (sent.Length > 0) GatewayMetrics.Resume(model);
        }
        throw Exhausted(model, errors, last, lastError);
    }

    // MoveNextAsync as a task that never throws synchronously.
    private static Task<bool> SafeMoveNext(IAsyncEnumerator<ChatResponseUpdate> e)
    {
        try { return e.MoveNextAsync().AsTask(); }
        catch (Exception ex) { return Task.FromException<bool>(ex); }
    }

    private static async Task<(bool More, Exception? Error)> AwaitStep(Task<bool> step, TimeSpan? stall, string name, CancellationToken ct)
    {
        try
        {
            if (stall is { } s && !step.IsCompleted)
            {
                using var delayCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
                var done = await Task.WhenAny(step, Task.Delay(s, delayCts.Token)).ConfigureAwait(false);
                delayCts.Cancel();
                ct.ThrowIfCancellationRequested();
                if (done != step) return (false, new UpstreamStreamException($"the stream from '{name}' stalled: no update for {s.TotalSeconds:0.###} s", stalled: true));
            }
            return (await step.ConfigureAwait(false), null);
        }
        catch (Exception ex) when (!ct.IsCancellationRequested)
        {
            return (false, ex);
        }
    }

    // Cancels the attempt, lets a pending step notice (bounded), then disposes the enumerator; never throws.
    private static async Task Release(IAsyncEnumerator<ChatResponseUpdate> e, Task<bool>? pending, CancellationTokenSource attemptCts)
    {
        try
        {
            if (pending is not null)
            {
                attemptCts.Cancel();
                try { await pending.WaitAsync(AbandonAfter).ConfigureAwait(false); }
                catch (TimeoutException) { return; } // an upstream that ignores cancellation is abandoned, not awaited
                catch (Exception) { }
            }
            await e.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception) { }
    }

    private static string Describe(FailureKind kind, Exception e, TimeSpan? attemptTimeout) =>
        kind == FailureKind.Timeout && e is OperationCanceledException && attemptTimeout is { } t ? $"timed out after {t.TotalSeconds:0.###} s" : e.Message;

    private static Exception Exhausted(string model, List<string> errors, FailureKind? last, Exception? lastError) =>
        errors.Count == 1 && lastError is not null
            ? new GatewayExhaustedException($"model '{model}': {errors[0]}", last ?? FailureKind.Error, lastError)
            : new GatewayExhaustedException($"model '{model}': every attempt failed ({string.Join("; ", errors)})", last ?? FailureKind.Error, lastError);
}

/// <summary>How a cut stream continues elsewhere: the text already sent becomes the start of the assistant's answer.</summary>
public static class Continuation
{
    /// <summary>
    /// The request with <paramref name="sent"/> as a final assistant message (appended to one the caller gave), so the
    /// next model continues the answer instead of starting again (assistant prefill; base models simply continue the text).
    /// </summary>
    public static List<ChatMessage> Messages(IReadOnlyList<ChatMessage> messages, string sent)
    {
        var list = new List<ChatMessage>(messages);
        if (list.Count > 0 && list[^1].Role == ChatRole.Assistant)
            list[^1] = new ChatMessage(ChatRole.Assistant, list[^1].Text + sent);
        else list.Add(new ChatMessage(ChatRole.Assistant, sent));
        return list;
    }

    /// <summary>The options with the output limit lowered by the pieces already sent; null when nothing is left.</summary>
    public static ChatOptions? Options(ChatOptions? options, int piecesSent)
    {
        if (options?.MaxOutputTokens is not { } max) return options;
        int left = max - piecesSent;
        if (left <= 0) return null;
        var o = options.Clone();
        o.MaxOutputTokens = left;
        return o;
    }
}
