using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;

namespace Consort.Testing;

/// <summary>One call a <see cref="ScriptedChatClient"/> received.</summary>
/// <param name="Messages">The messages.</param>
/// <param name="Options">The options.</param>
/// <param name="Number">1-based call number.</param>
public sealed record ScriptedCall(IReadOnlyList<ChatMessage> Messages, ChatOptions? Options, int Number)
{
    /// <summary>The last message's text (the prompt in most protocols).</summary>
    public string Prompt => Messages.Count == 0 ? "" : Messages[^1].Text;
    /// <summary>All message texts joined by newlines.</summary>
    public string AllText => string.Join("\n", Messages.Select(m => m.Text));
}

/// <summary>What a scripted reply holds.</summary>
/// <param name="Text">The answer.</param>
/// <param name="Logprobs">Per-token log-probabilities (confidence), or null.</param>
public sealed record ScriptedReply(string Text, float[]? Logprobs = null)
{
    /// <summary>Text without logprobs.</summary>
    public static implicit operator ScriptedReply(string text) => new(text);
}

/// <summary>
/// The one scripted chat client of the test kit, for protocol tests of orchestration logic: every reply comes from a
/// callback of the call (messages, options, call number); every call is recorded in order. Usage counts characters
/// (prompt in, answer out), so totals are checkable. Streaming yields the answer word by word, then a usage update.
/// </summary>
public sealed class ScriptedChatClient(Func<ScriptedCall, CancellationToken, Task<ScriptedReply>> reply) : IChatClient
{
    private readonly ConcurrentQueue<ScriptedCall> _calls = new();
    private int _count;

    /// <summary>A client whose replies come from a synchronous function.</summary>
    public ScriptedChatClient(Func<ScriptedCall, ScriptedReply> reply) : this((c, _) => Task.FromResult(reply(c))) { }

    /// <summary>A client whose replies come from a function of the prompt (last message), the call number and the token.</summary>
    public ScriptedChatClient(Func<string, int, CancellationToken, Task<string>> reply)
        : this(async (c, ct) => new ScriptedReply(await reply(c.Prompt, c.Number, ct).ConfigureAwait(false))) { }

    /// <summary>The calls so far, in arrival order.</summary>
    public IReadOnlyList<ScriptedCall> Calls => _calls.ToArray();
    /// <summary>How many calls were made.</summary>
    public int CallCount => Volatile.Read(ref _count);

    /// <inheritdoc />
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var call = new ScriptedCall(messages.ToList(), options, Interlocked.Increment(ref _count));
        _calls.Enqueue(call);
        var r = await reply(call, cancellationToken).ConfigureAwait(false);
        var response = new ChatResponse(new ChatMessage(ChatRole.Assistant, r.Text))
        {
            FinishReason = ChatFinishReason.Stop,
            Usage = new UsageDetails { InputTokenCount = call.AllText.Length, OutputTokenCount = r.Text.Length, TotalTokenCount = call.AllText.Length + r.Text.Length },
        };
        if (r.Logprobs is not null) response.WithTokenLogprobs(r.Logprobs);
        return response;
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var r = await GetResponseAsync(messages, options, cancellationToken).ConfigureAwait(false);
        var text = r.Text;
        int start = 0;
        for (int i = 1; i <= text.Length; i++)
        {
            if (i == text.Length || text[i] == ' ')
            {
                yield return new ChatResponseUpdate(ChatRole.Assistant, text[start..i]);
                start = i;
            }
        }
        yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(r.Usage!)]) { FinishReason = ChatFinishReason.Stop };
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null) => serviceKey is null && serviceType.IsInstanceOfType(this) ? this : null;

    /// <inheritdoc />
    public void Dispose() { }

    /// <summary>A text-only model answering with <paramref name="reply"/>.</summary>
    public static ConsortModel Model(string name, Func<ScriptedCall, ScriptedReply> reply, decimal? pricePerMillion = null) =>
        new(new ModelDescriptor { Name = name, Access = ModelAccess.Text, InputPricePerMillion = pricePerMillion, OutputPricePerMillion = pricePerMillion },
            new ScriptedChatClient(reply));

    /// <summary>A model answering with <paramref name="reply"/> of (prompt, call number, token), priced at 1 per million tokens;
    /// with <paramref name="tokens"/> it also offers their token access.</summary>
    public static ConsortModel Model(string name, Func<string, int, CancellationToken, Task<string>> reply, ITokenModel? tokens = null) =>
        new(new ModelDescriptor
            {
                Name = name, Access = tokens is null ? ModelAccess.Text : ModelAccess.Text | ModelAccess.FullLogits, InputPricePerMillion = 1m,
                Vocabulary = tokens?.Descriptor.Vocabulary,
            },
            new ScriptedChatClient(reply), tokens);

    /// <summary>A model whose answers carry token logprobs (it offers top-k access, with <paramref name="tokens"/> if given).</summary>
    public static ConsortModel WithLogprobs(string name, Func<ScriptedCall, ScriptedReply> reply, ITokenModel? tokens = null, decimal? pricePerMillion = null) =>
        new(new ModelDescriptor
            {
                Name = name, Access = ModelAccess.Text | (tokens is null ? ModelAccess.TopKLogprobs : ModelAccess.FullLogits), TopK = tokens is null ? 5 : null,
                Vocabulary = tokens?.Descriptor.Vocabulary, InputPricePerMillion = pricePerMillion, OutputPricePerMillion = pricePerMillion,
            },
            new ScriptedChatClient(reply), tokens);

    /// <summary>The scripted client behind a model built by this class.</summary>
    public static ScriptedChatClient Of(ConsortModel model) => (ScriptedChatClient)model.Chat.GetService(typeof(ScriptedChatClient))!;
}
