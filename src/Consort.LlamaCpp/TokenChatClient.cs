using System.Diagnostics;
using System.Runtime.CompilerServices;
using Consort.Sampling;
using Microsoft.Extensions.AI;

namespace Consort.LlamaCpp;

/// <summary>Turns chat messages into a prompt's token ids (chat template or plain text).</summary>
public interface IChatPromptEncoder
{
    /// <summary>The prompt tokens for <paramref name="messages"/>.</summary>
    int[] EncodePrompt(IEnumerable<ChatMessage> messages);
}

/// <summary>Encodes a chat as the plain concatenation of its message texts, for base models without a template.</summary>
public sealed class PlainPromptEncoder(ITokenizer tokenizer, bool addBos) : IChatPromptEncoder
{
    /// <summary>Joins the non-empty message texts in order, one per line.</summary>
    public static string Join(IEnumerable<ChatMessage> messages) =>
        string.Join("\n", messages.Select(m => m.Text).Where(t => !string.IsNullOrEmpty(t)));

    /// <inheritdoc />
    public int[] EncodePrompt(IEnumerable<ChatMessage> messages) => tokenizer.Encode(Join(messages), addBos);
}

/// <summary>What one generation produced.</summary>
/// <param name="Text">Output text (stop sequence removed).</param>
/// <param name="Tokens">Generated token ids (end token excluded).</param>
/// <param name="Logprobs">Untempered log-probability of each generated token.</param>
/// <param name="PromptTokens">Prompt length in tokens.</param>
/// <param name="Finish">Why it stopped.</param>
/// <param name="Sequence">The decoding sequence (disposed by the client after <see cref="TokenChatClient.OnCompleted"/>).</param>
/// <param name="Elapsed">Wall time.</param>
public sealed record GenerationResult(string Text, IReadOnlyList<int> Tokens, float[] Logprobs, int PromptTokens,
    ChatFinishReason Finish, ITokenSequence Sequence, TimeSpan Elapsed);

/// <summary>
/// A chat client over any <see cref="ITokenModel"/>: encodes the chat, decodes token by token with a
/// <see cref="TokenSampler"/>, stops on end tokens, stop sequences, the token limit or the context end,
/// and attaches each generated token's log-probability. Streaming yields pieces whose concatenation is
/// exactly the non-streaming text.
/// </summary>
public class TokenChatClient : IChatClient
{
    private readonly IChatPromptEncoder _encoder;
    private readonly int? _defaultSeed;

    /// <summary>Creates a client.</summary>
    public TokenChatClient(ITokenModel model, IChatPromptEncoder encoder, int? defaultSeed = null)
    {
        Model = model; _encoder = encoder; _defaultSeed = defaultSeed;
    }

    /// <summary>Default output limit when the options give none.</summary>
    public const int DefaultMaxOutputTokens = 256;

    /// <summary>The token model decoded.</summary>
    public ITokenModel Model { get; }
    /// <summary>The prompt encoder.</summary>
    public IChatPromptEncoder PromptEncoder => _encoder;

    /// <inheritdoc />
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        GenerationResult? result = null;
        await foreach (var ev in GenerateAsync(messages, options, cancellationToken))
            if (ev.Result is not null) result = ev.Result;
        try
        {
            var response = new ChatResponse(new ChatMessage(ChatRole.Assistant, result!.Text))
            {
                ModelId = Model.Descriptor.Name,
                FinishReason = result.Finish,
                Usage = new UsageDetails
                {
                    InputTokenCount = result.PromptTokens,
                    OutputTokenCount = result.Tokens.Count,
                    TotalTokenCount = result.PromptTokens + result.Tokens.Count,
                },
            };
            response.WithTokenLogprobs(result.Logprobs);
            OnCompleted(response, result);
            return response;
        }
        finally
        {
            result?.Sequence.Dispose();
        }
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        string id = Guid.NewGuid().ToString("N");
        await foreach (var ev in GenerateAsync(messages, options, cancellationToken))
        {
            if (ev.Piece is { Length: > 0 } piece)
                yield return new ChatResponseUpdate(ChatRole.Assistant, piece) { ResponseId = id, ModelId = Model.Descriptor.Name };
            if (ev.Result is { } r)
            {
                var usage = new UsageDetails { InputTokenCount = r.PromptTokens, OutputTokenCount = r.Tokens.Count, TotalTokenCount = r.PromptTokens + r.Tokens.Count };
                var final = new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(usage)])
                {
                    ResponseId = id, ModelId = Model.Descriptor.Name, FinishReason = r.Finish,
                    AdditionalProperties = new() { [TokenLogprobExtensions.LogprobsKey] = r.Logprobs },
                };
                r.Sequence.Dispose();
                yield return final;
            }
        }
    }

    /// <summary>Hook for subclasses to fill in default options (e.g. a method's generation settings).</summary>
    protected virtual ChatOptions? PrepareOptions(ChatOptions? options) => options;

    /// <summary>Hook for subclasses to add facts (traces) to a finished non-streaming response.</summary>
    protected virtual void OnCompleted(ChatResponse response, GenerationResult result) { }

    /// <summary>One event of a generation: a text piece, or the final result.</summary>
    public readonly record struct GenerationEvent(string? Piece, GenerationResult? Result);

    /// <summary>Generates; yields text pieces as they become final, then the result (its sequence is the caller's to dispose).</summary>
    public async IAsyncEnumerable<GenerationEvent> GenerateAsync(IEnumerable<ChatMessage> messages, ChatOptions? options,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var sw = Stopwatch.StartNew();
        options = PrepareOptions(options);
        var prompt = _encoder.EncodePrompt(messages);
        int maxTokens = options?.MaxOutputTokens ?? DefaultMaxOutputTokens;
        if (maxTokens < 0) throw new ConsortException($"max output tokens must not be negative, got {maxTokens}");
        float temperature = options?.Temperature ?? 0f;
        long? seed = options?.Seed ?? _defaultSeed;
        var random = seed is { } s ? new Random(unchecked((int)s ^ (int)(s >> 32))) : new Random();
        var sampler = new TokenSampler(temperature, options?.TopK, options?.TopP, random);
        var stops = options?.StopSequences?.Where(x => !string.IsNullOrEmpty(x)).ToArray() ?? [];
        var tokenizer = Model.Tokenizer;
        var ends = tokenizer.EndTokens;
        int limit = Model.Descriptor.ContextSize > 0 ? Model.Descriptor.ContextSize : int.MaxValue;

        var seq = await Model.StartAsync(prompt, cancellationToken);
        var generated = new List<int>();
        var logprobs = new List<float>();
        string emitted = "";
        string text = "";
        var finish = ChatFinishReason.Length;
        bool handedOver = false;
        try
        {
            while (generated.Count < maxTokens)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var next = seq.Next;
                int token = sampler.Sample(next);
                if (ends.Contains(token)) { finish = ChatFinishReason.Stop; break; }
                generated.Add(token);
                logprobs.Add(next.LogProbabilities()[token]);
                text = tokenizer.Decode(generated);
                int stopAt = FindStop(text, stops);
                if (stopAt >= 0)
                {
                    text = text[..stopAt];
                    finish = ChatFinishReason.Stop;
                    break;
                }
                // Emit what can no longer change: not a partial UTF-8 character, not a possible stop-sequence start.
                int safe = SafeLength(text, stops);
                if (safe > emitted.Length && text.StartsWith(emitted, StringComparison.Ordinal))
                {
                    string piece = text[emitted.Length..safe];
                    emitted = text[..safe];
                    yield return new GenerationEvent(piece, null);
                }
                if (generated.Count >= maxTokens) break;
                if (seq.Tokens.Count + 1 > limit) break; // context full: finish as Length
                await seq.AppendAsync([token], cancellationToken);
            }
            if (text.Length > emitted.Length && text.StartsWith(emitted, StringComparison.Ordinal))
                yield return new GenerationEvent(text[emitted.Length..], null);
            handedOver = true;
            yield return new GenerationEvent(null, new GenerationResult(text, generated, logprobs.ToArray(), prompt.Length, finish, seq, sw.Elapsed));
        }
        finally
        {
            // Errors, cancellation and consumers that stop early all free the sequence slot here.
            if (!handedOver) seq.Dispose();
        }
    }

    private static int FindStop(string text, string[] stops)
    {
        int best = -1;
        foreach (var s in stops)
        {
            int i = text.IndexOf(s, StringComparison.Ordinal);
            if (i >= 0 && (best < 0 || i < best)) best = i;
        }
        return best;
    }

    private static int SafeLength(string text, string[] stops)
    {
        int safe = text.Length;
        // An incomplete multi-byte character decodes as U+FFFD until its last byte arrives.
        while (safe > 0 && text[safe - 1] == '\uFFFD') safe--;
        if (safe > 0 && char.IsHighSurrogate(text[safe - 1])) safe--;
        foreach (var s in stops)
        {
            for (int len = Math.Min(s.Length - 1, text.Length); len > 0; len--)
            {
                if (string.CompareOrdinal(text, text.Length - len, s, 0, len) == 0)
                {
                    safe = Math.Min(safe, text.Length - len);
                    break;
                }
            }
        }
        return safe;
    }

    /// <inheritdoc />
    public virtual object? GetService(Type serviceType, object? serviceKey = null)
    {
        if (serviceKey is not null) return null;
        if (serviceType.IsInstanceOfType(this)) return this;
        if (serviceType.IsInstanceOfType(Model)) return Model;
        if (serviceType.IsInstanceOfType(_encoder)) return _encoder;
        if (serviceType == typeof(ChatClientMetadata)) return new ChatClientMetadata("consort", null, Model.Descriptor.Name);
        return null;
    }

    /// <summary>Nothing to free: the token model is owned by the <see cref="ConsortModel"/>.</summary>
    public void Dispose() { GC.SuppressFinalize(this); }
}
