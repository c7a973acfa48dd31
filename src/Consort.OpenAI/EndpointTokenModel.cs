using System.Diagnostics;

namespace Consort.OpenAI;

/// <summary>
/// Token access to an OpenAI-compatible endpoint through <c>/v1/completions</c>: next-token top-k via
/// <c>max_tokens: 1, logprobs: k</c>, scoring via <c>echo: true</c>. Endpoints keep no state between calls, so every
/// step re-sends the whole text: a sequence of n steps costs about n²/2 prompt tokens. Token ids are interned token
/// strings (<see cref="StringVocabulary"/>).
/// </summary>
public sealed class EndpointTokenModel : ITokenModel
{
    private readonly CompletionsClient _client;
    private readonly StringVocabulary _vocab;
    private readonly int _k;

    /// <summary>Creates the model over a completions client.</summary>
    public EndpointTokenModel(ModelDescriptor descriptor, CompletionsClient client, StringVocabulary vocabulary, int k)
    {
        Descriptor = descriptor; _client = client; _vocab = vocabulary; _k = k;
    }

    /// <inheritdoc />
    public ModelDescriptor Descriptor { get; }
    /// <inheritdoc />
    public ITokenizer Tokenizer => _vocab;
    /// <inheritdoc />
    public DistributionKind DistributionKind => DistributionKind.TopKLogprobs;
    /// <inheritdoc />
    public UsageMeter Usage { get; } = new();
    /// <summary>Most concurrent requests <see cref="StepAsync"/> sends.</summary>
    public int MaxParallelSteps { get; init; } = 4;

    /// <inheritdoc />
    public async ValueTask<ITokenSequence> StartAsync(IReadOnlyList<int> prompt, CancellationToken cancellationToken = default)
    {
        if (prompt.Count == 0) throw new ArgumentException("prompt must not be empty", nameof(prompt));
        var seq = new Sequence(this, [.. prompt], null);
        await seq.RefreshAsync(cancellationToken).ConfigureAwait(false);
        return seq;
    }

    /// <inheritdoc />
    public async ValueTask StepAsync(IReadOnlyList<(ITokenSequence Sequence, int Token)> steps, CancellationToken cancellationToken = default)
    {
        await Parallel.ForEachAsync(steps, new ParallelOptions { MaxDegreeOfParallelism = MaxParallelSteps, CancellationToken = cancellationToken },
            async (s, ct) => await s.Sequence.AppendAsync([s.Token], ct).ConfigureAwait(false)).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async ValueTask<float[]> ScoreAsync(IReadOnlyList<int> prompt, IReadOnlyList<int> continuation, CancellationToken cancellationToken = default)
    {
        string head = _vocab.Decode(prompt);
        var pieces = continuation.Select(t => _vocab[t]).ToArray();
        string text = head + string.Concat(pieces);
        var sw = Stopwatch.StartNew();
        // max_tokens 1 rather than 0: some servers reject 0; the one generated token lies past the text and is ignored.
        var r = await _client.CompleteAsync(text, 1, 1, echo: true, cancellationToken: cancellationToken).ConfigureAwait(false);
        Usage.Add(r.PromptTokens, r.CompletionTokens, sw.Elapsed);
        if (r.Logprobs.Count == 0)
            throw new ConsortException($"model '{Descriptor.Name}': the endpoint returned no echoed logprobs; it cannot score text (needs /v1/completions with echo and logprobs)");
        // A server token is credited to the continuation piece its first character falls in (tokens that straddle
        // a piece boundary go to the earlier piece).
        var scores = new float[pieces.Length];
        int start = head.Length;
        var bounds = new int[pieces.Length + 1];
        bounds[0] = start;
        for (int i = 0; i < pieces.Length; i++) bounds[i + 1] = bounds[i] + pieces[i].Length;
        int pos = 0;
        foreach (var tl in r.Logprobs)
        {
            int off = tl.TextOffset ?? pos;
            pos = off + tl.Token.Length;
            if (off < start || off >= text.Length) continue;
            int idx = Array.BinarySearch(bounds, off);
            if (idx < 0) idx = ~idx - 1;
            if (idx >= 0 && idx < pieces.Length) scores[idx] += tl.Logprob ?? 0;
        }
        return scores;
    }

    private async Task<TokenDistribution> NextAsync(IReadOnlyList<int> tokens, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        var r = await _client.CompleteAsync(_vocab.Decode(tokens), 1, _k, echo: false, cancellationToken: ct).ConfigureAwait(false);
        Usage.Add(r.PromptTokens, r.CompletionTokens, sw.Elapsed);
        if (r.Logprobs.Count == 0)
            throw new ConsortException($"model '{Descriptor.Name}': the endpoint returned no logprobs for the next token");
        var first = r.Logprobs[0];
        var top = first.Top.Count > 0 ? first.Top : first.Logprob is { } lp ? [(first.Token, lp)] : [];
        var ids = new List<int>(top.Count);
        var lps = new List<float>(top.Count);
        foreach (var (tok, l) in top)
        {
            int id = _vocab.Intern(tok);
            if (ids.Contains(id)) continue; // servers may list two byte-variants that decode to the same text
            ids.Add(id); lps.Add(l);
        }
        return TokenDistribution.FromTopK(_vocab.VocabularySize, [.. ids], [.. lps]);
    }

    /// <inheritdoc />
    public void Dispose() { }

    private sealed class Sequence(EndpointTokenModel model, List<int> tokens, TokenDistribution? next) : ITokenSequence
    {
        private TokenDistribution? _next = next;
        public ITokenModel Model => model;
        public IReadOnlyList<int> Tokens => tokens;
        public TokenDistribution Next => _next ?? throw new InvalidOperationException("sequence has no distribution yet");

        public async Task RefreshAsync(CancellationToken ct) => _next = await model.NextAsync(tokens, ct).ConfigureAwait(false);

        public async ValueTask AppendAsync(IReadOnlyList<int> more, CancellationToken cancellationToken = default)
        {
            tokens.AddRange(more);
            await RefreshAsync(cancellationToken).ConfigureAwait(false);
        }

        public ValueTask<ITokenSequence> ForkAsync(CancellationToken cancellationToken = default) =>
            ValueTask.FromResult<ITokenSequence>(new Sequence(model, [.. tokens], _next));

        public async ValueTask RewindAsync(int length, CancellationToken cancellationToken = default)
        {
            if (length < 1 || length > tokens.Count) throw new ArgumentOutOfRangeException(nameof(length), $"rewind to {length} of {tokens.Count} tokens");
            if (length == tokens.Count) return;
            tokens.RemoveRange(length, tokens.Count - length);
            await RefreshAsync(cancellationToken).ConfigureAwait(false);
        }

        public void Dispose() { }
    }
}
