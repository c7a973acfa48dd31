using Consort.Decoding;

namespace Consort.Server;

/// <summary>Settings of one raw-prompt completion run on a token model.</summary>
internal sealed record CompletionSettings(int MaxTokens, float Temperature, float TopP, int? Seed, IList<string>? Stop, int Logprobs, bool Echo, int? TopK = null);

/// <summary>One emitted token with its text and log-probabilities.</summary>
internal sealed record EmittedToken(int Id, string Text, float? Logprob, IReadOnlyList<(string Text, float Logprob)>? Top);

/// <summary>Result of a completion run.</summary>
internal sealed record CompletionOutput(string Text, IReadOnlyList<EmittedToken> PromptTokens, IReadOnlyList<EmittedToken> Tokens, int PromptTokenCount, string FinishReason);

/// <summary>
/// Decodes a raw prompt on an <see cref="ITokenModel"/> with the shared decode loop (<see cref="TokenGenerator"/>:
/// greedy at temperature 0, otherwise seeded sampling with top-k and top-p; stop strings never leak into streamed
/// text), reporting each token's log-probability and the top alternatives, for <c>/v1/completions</c>.
/// </summary>
internal static class TokenCompletion
{
    /// <param name="model">The model.</param>
    /// <param name="prompt">Raw prompt text.</param>
    /// <param name="s">Settings.</param>
    /// <param name="onPiece">Receives each piece of text as it becomes final, with the tokens it completes.</param>
    /// <param name="ct">Cancels the run.</param>
    public static async Task<CompletionOutput> RunAsync(ITokenModel model, string prompt, CompletionSettings s,
        Func<IReadOnlyList<EmittedToken>, string, ValueTask>? onPiece, CancellationToken ct)
    {
        var tok = model.Tokenizer;
        int[] promptIds = tok.Encode(prompt, addBos: tok.Bos is not null);
        if (promptIds.Length == 0) throw new ApiError(400, "prompt is empty", param: "prompt");
        int ctx = model.Descriptor.ContextSize;
        if (ctx > 0 && promptIds.Length + s.MaxTokens > ctx)
            throw new ApiError(400, $"prompt ({promptIds.Length} tokens) plus max_tokens ({s.MaxTokens}) exceeds model '{model.Descriptor.Name}''s context of {ctx} tokens",
                param: "max_tokens", code: "context_length_exceeded");

        var echoed = new List<EmittedToken>();
        if (s.Echo)
        {
            // BOS has no text; it is the condition of the first real token and is not echoed.
            int first = tok.Bos is { } bos && promptIds[0] == bos ? 1 : 0;
            float[]? lps = null;
            if (s.Logprobs > 0 && promptIds.Length > 1 && first < promptIds.Length)
                lps = await model.ScoreAsync(promptIds[..Math.Max(1, first)], promptIds[Math.Max(1, first)..], ct).ConfigureAwait(false);
            for (int i = first; i < promptIds.Length; i++)
            {
                float? lp = lps is null ? null : i >= Math.Max(1, first) ? lps[i - Math.Max(1, first)] : null;
                echoed.Add(new EmittedToken(promptIds[i], Piece(tok, promptIds, i), lp, null));
            }
            // SentencePiece tokenizers add a dummy leading space; echo returns the prompt as sent.
            string joined = string.Concat(echoed.Select(x => x.Text));
            if (echoed.Count > 0 && joined.Length > prompt.Length && joined.EndsWith(prompt, StringComparison.Ordinal))
            {
                int extra = joined.Length - prompt.Length;
                if (echoed[0].Text.Length >= extra) echoed[0] = echoed[0] with { Text = echoed[0].Text[extra..] };
            }
        }

        var decode = new DecodeSettings(s.MaxTokens, s.Temperature, s.TopK, s.TopP < 1 ? s.TopP : null, s.Seed, s.Stop?.ToArray());
        var all = new List<int>(promptIds);
        var tokens = new List<EmittedToken>();
        int reported = 0, released = 0, tokenTextEnd = 0;
        GenerationResult? result = null;
        try
        {
            await foreach (var ev in TokenGenerator.GenerateAsync(model, promptIds, decode, ct).ConfigureAwait(false))
            {
                if (ev.Token is { } t)
                {
                    all.Add(t);
                    float[] lp = ev.Distribution!.LogProbabilities();
                    var top = s.Logprobs > 0 ? TopK(ev.Distribution, lp, s.Logprobs, tok, all) : null;
                    tokens.Add(new EmittedToken(t, Piece(tok, all, all.Count - 1), ev.Logprob, top));
                }
                if (ev.Result is { } r) result = r;
                if (ev.Piece is { Length: > 0 } piece)
                {
                    released += piece.Length;
                    // Report the tokens whose text lies inside what has been released.
                    var done = new List<EmittedToken>();
                    while (reported < tokens.Count && tokenTextEnd + tokens[reported].Text.Length <= released)
                    {
                        tokenTextEnd += tokens[reported].Text.Length;
                        done.Add(tokens[reported++]);
                    }
                    if (onPiece is not null) await onPiece(done, piece).ConfigureAwait(false);
                }
            }
        }
        finally
        {
            result?.Sequence.Dispose();
        }
        string text = result!.Text;
        // Tokens past the end of the text (a stop string) are not returned; the last kept one is cut to fit.
        var kept = new List<EmittedToken>();
        int at = 0;
        foreach (var e in tokens)
        {
            if (at >= text.Length && e.Text.Length > 0) break;
            var piece = e.Text.Length > text.Length - at ? e with { Text = text[at..] } : e;
            kept.Add(piece);
            at += piece.Text.Length;
        }
        if (onPiece is not null && reported < kept.Count) await onPiece(kept.Skip(reported).ToList(), "").ConfigureAwait(false);
        string prefix = s.Echo ? string.Concat(echoed.Select(x => x.Text)) : "";
        string finish = result.Finish == Microsoft.Extensions.AI.ChatFinishReason.Stop ? "stop" : "length";
        return new CompletionOutput(prefix + text, echoed, kept, promptIds.Length, finish);
    }

    // Text of token i, decoded after a few tokens of context so that SentencePiece's leading space survives.
    private static string Piece(ITokenizer tok, IReadOnlyList<int> ids, int i)
    {
        int from = Math.Max(0, i - 3);
        var ctx = new int[i - from];
        for (int j = from; j < i; j++) ctx[j - from] = ids[j];
        string before = tok.Decode(ctx);
        string with = tok.Decode([.. ctx, ids[i]]);
        return with.StartsWith(before, StringComparison.Ordinal) ? with[before.Length..] : tok.Decode([ids[i]]);
    }

    private static List<(string, float)> TopK(TokenDistribution dist, float[] lp, int k, ITokenizer tok, List<int> all)
    {
        IEnumerable<int> ids;
        if (dist.Kind == DistributionKind.TopKLogprobs) ids = dist.TopIds!.Take(k);
        else
        {
            // Partial selection: k passes would be O(kV); a bounded sorted list is O(V log k).
            var best = new SortedSet<(float Lp, int Id)>(Comparer<(float Lp, int Id)>.Create((a, b) => a.Lp != b.Lp ? a.Lp.CompareTo(b.Lp) : b.Id.CompareTo(a.Id)));
            for (int i = 0; i < lp.Length; i++)
            {
                if (best.Count < k) best.Add((lp[i], i));
                else if (lp[i] > best.Min.Lp) { best.Remove(best.Min); best.Add((lp[i], i)); }
            }
            ids = best.Reverse().Select(b => b.Id);
        }
        var result = new List<(string, float)>();
        var seen = new HashSet<string>();
        int last = all.Count - 1, chosen = all[last];
        foreach (var id in ids)
        {
            // Alternative i at the same position: decode it in place of the chosen token.
            all[last] = id;
            string text = Piece(tok, all, last);
            if (seen.Add(text)) result.Add((text, lp[id]));
        }
        all[last] = chosen;
        return result;
    }
}
