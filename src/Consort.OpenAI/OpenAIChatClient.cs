using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using OpenAI.Chat;

namespace Consort.OpenAI;

/// <summary>
/// Wraps the MEAI OpenAI chat adapter: asks for token logprobs when <see cref="TokenLogprobExtensions.WantsLogprobs"/>
/// (the adapter has no field for them), attaches them with <see cref="TokenLogprobExtensions.WithTokenLogprobs"/>,
/// records cost from the descriptor's prices, and turns transport failures into <see cref="ConsortException"/>.
/// </summary>
public sealed class OpenAIChatClient : DelegatingChatClient
{
    private readonly OpenAIModelOptions _o;
    private readonly ModelDescriptor _descriptor;

    /// <summary>Wraps <paramref name="inner"/> (an <c>AsIChatClient()</c> adapter).</summary>
    public OpenAIChatClient(IChatClient inner, OpenAIModelOptions options, ModelDescriptor descriptor) : base(inner)
    {
        _o = options; _descriptor = descriptor;
    }

    /// <summary>Counters of the chat calls made.</summary>
    public UsageMeter Usage { get; } = new();

    /// <inheritdoc />
    public override async Task<ChatResponse> GetResponseAsync(IEnumerable<Microsoft.Extensions.AI.ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        bool wants = options.WantsLogprobs() && _o.TopLogprobs > 0;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        ChatResponse r;
        try
        {
            r = await base.GetResponseAsync(messages, wants ? WithLogprobRequest(options!) : options, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (ResilientHttp.Translate(e, _o, cancellationToken) is { } ce)
        {
            throw ce;
        }
        if (wants && r.RawRepresentation is ChatCompletion cc && cc.ContentTokenLogProbabilities is { Count: > 0 } lps)
            r.WithTokenLogprobs([.. lps.Select(l => l.LogProbability)]);
        long inTok = r.Usage?.InputTokenCount ?? 0, outTok = r.Usage?.OutputTokenCount ?? 0;
        Usage.Add(inTok, outTok, sw.Elapsed);
        return r;
    }

    /// <inheritdoc />
    public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<Microsoft.Extensions.AI.ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        bool wants = options.WantsLogprobs() && _o.TopLogprobs > 0;
        IAsyncEnumerator<ChatResponseUpdate> e;
        try
        {
            e = base.GetStreamingResponseAsync(messages, wants ? WithLogprobRequest(options!) : options, cancellationToken).GetAsyncEnumerator(cancellationToken);
        }
        catch (Exception ex) when (ResilientHttp.Translate(ex, _o, cancellationToken) is { } ce)
        {
            throw ce;
        }
        await using (e.ConfigureAwait(false))
        {
            while (true)
            {
                bool more;
                try
                {
                    more = await e.MoveNextAsync().ConfigureAwait(false);
                }
                catch (Exception ex) when (ResilientHttp.Translate(ex, _o, cancellationToken) is { } ce)
                {
                    throw ce;
                }
                if (!more) yield break;
                var u = e.Current;
                if (wants && u.RawRepresentation is StreamingChatCompletionUpdate s && s.ContentTokenLogProbabilities is { Count: > 0 } lps)
                {
                    u.AdditionalProperties ??= new();
                    u.AdditionalProperties[TokenLogprobExtensions.LogprobsKey] = lps.Select(l => l.LogProbability).ToArray();
                }
                foreach (var usage in u.Contents.OfType<UsageContent>())
                {
                    long inTok = usage.Details.InputTokenCount ?? 0, outTok = usage.Details.OutputTokenCount ?? 0;
                    Usage.Add(inTok, outTok, TimeSpan.Zero);
                }
                yield return u;
            }
        }
    }

    // The adapter copies no logprob setting to the wire; the raw options object is the documented way in.
    private ChatOptions WithLogprobRequest(ChatOptions options)
    {
        var o = options.Clone();
        var previous = options.RawRepresentationFactory;
        int k = _o.TopLogprobs;
        o.RawRepresentationFactory = client =>
        {
            var raw = previous?.Invoke(client) as ChatCompletionOptions ?? new ChatCompletionOptions();
            raw.IncludeLogProbabilities = true;
            raw.TopLogProbabilityCount = k;
            return raw;
        };
        return o;
    }
}
