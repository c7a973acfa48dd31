using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;

namespace Consort.Decoding;

/// <summary>
/// A chat client over any <see cref="ITokenModel"/>: encodes the chat with an <see cref="IChatPromptEncoder"/> and
/// decodes with <see cref="TokenGenerator"/>, attaching each generated token's log-probability. Streaming yields
/// pieces whose concatenation is exactly the non-streaming text.
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
    public const int DefaultMaxOutputTokens = DecodeSettings.DefaultMaxTokens;

    /// <summary>The token model decoded.</summary>
    public ITokenModel Model { get; }
    /// <summary>The prompt encoder.</summary>
    public IChatPromptEncoder PromptEncoder => _encoder;

    /// <inheritdoc />
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        GenerationResult? result = null;
        await foreach (var ev in GenerateAsync(messages, options, cancellationToken).ConfigureAwait(false))
            if (ev.Result is not null) result = ev.Result;
        try
        {
            var response = new ChatResponse(new ChatMessage(ChatRole.Assistant, result!.Text))
            {
                ModelId = Model.Descriptor.Name,
                FinishReason = result.Finish,
                Usage = UsageOf(result),
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
        await foreach (var ev in GenerateAsync(messages, options, cancellationToken).ConfigureAwait(false))
        {
            if (ev.Piece is { Length: > 0 } piece)
                yield return new ChatResponseUpdate(ChatRole.Assistant, piece) { ResponseId = id, ModelId = Model.Descriptor.Name };
            if (ev.Result is { } r)
            {
                var final = new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(UsageOf(r))])
                {
                    ResponseId = id, ModelId = Model.Descriptor.Name, FinishReason = r.Finish,
                    AdditionalProperties = new() { [ConsortKeys.Logprobs] = r.Logprobs },
                };
                try { OnStreamCompleted(final, r); }
                finally { r.Sequence.Dispose(); }
                yield return final;
            }
        }
    }

    private static UsageDetails UsageOf(GenerationResult r) =>
        new() { InputTokenCount = r.PromptTokens, OutputTokenCount = r.Tokens.Count, TotalTokenCount = r.PromptTokens + r.Tokens.Count };

    /// <summary>Hook for subclasses to fill in default options (e.g. a method's generation settings).</summary>
    protected virtual ChatOptions? PrepareOptions(ChatOptions? options) => options;

    /// <summary>Hook for subclasses to add facts (traces) to a finished non-streaming response.</summary>
    protected virtual void OnCompleted(ChatResponse response, GenerationResult result) { }

    /// <summary>Hook for subclasses to add the same facts to the last update of a stream (so both report alike).</summary>
    protected virtual void OnStreamCompleted(ChatResponseUpdate final, GenerationResult result) { }

    /// <summary>Generates; yields token events, then the result (its sequence is the caller's to dispose).</summary>
    public IAsyncEnumerable<GenerationEvent> GenerateAsync(IEnumerable<ChatMessage> messages, ChatOptions? options, CancellationToken cancellationToken = default)
    {
        options = PrepareOptions(options);
        var prompt = _encoder.EncodePrompt(messages);
        return TokenGenerator.GenerateAsync(Model, prompt, DecodeSettings.From(options, _defaultSeed), cancellationToken);
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
