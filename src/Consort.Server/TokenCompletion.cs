namespace Consort.Server;

/// <summary>Settings of one raw-prompt completion run on a token model.</summary>
internal sealed record CompletionSettings(int MaxTokens, float Temperature, float TopP, int? Seed, IList<string>? Stop, int Logprobs, bool Echo);

/// <summary>One emitted token with its text and log-probabilities.</summary>
internal sealed record EmittedToken(int Id, string Text, float? Logprob, IReadOnlyList<(string Text, float Logprob)>? Top);

/// <summary>Result of a completion run.</summary>
internal sealed record CompletionOutput(string Text, IReadOnlyList<EmittedToken> PromptTokens, IReadOnlyList<EmittedToken> Tokens, int PromptTokenCount, string FinishReason);

/// <summary>
/// Decodes a raw prompt on an <see cref="ITokenModel"/> (greedy at temperature 0, otherwise seeded sampling with top-p),
/// reporting each token's log-probability and the top alternatives, for <c>/v1/completions</c>.
/// </summary>
internal static class TokenCompletion
{
    public static async Task<CompletionOutput> RunAsync(ITokenModel model, string prompt, CompletionSettings s,
        Func<EmittedToken, string, ValueTask>? onToken, CancellationToken ct)
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

        var rng = s.Seed is { } seed ? new Random(seed) : new Random();
        var all = new List<int>(promptIds);
        var emitted = new List<EmittedToken>();
        var text = new System.Text.StringBuilder();
        string finish = "length";
        using var seq = await model.StartAsync(promptIds, ct).ConfigureAwait(false);
        for (int step = 0; step < s.MaxTokens; step++)
        {
            ct.ThrowIfCancellationRequested();
            var dist = seq.Next;
            float[] lp = dist.LogProbabilities();
            int t = s.Temperature <= 0 ? dist.ArgMax() : Sample(lp, s.Temperature, s.TopP, rng);
            if (tok.EndTokens.Contains(t)) { finish = "stop"; break; }
            all.Add(t);
            string piece = Piece(tok, all, all.Count - 1);
            var top = s.Logprobs > 0 ? TopK(dist, lp, s.Logprobs, tok, all) : null;
            var e = new EmittedToken(t, piece, lp[t], top);
            int before = text.Length;
            text.Append(piece);
            if (s.Stop is { Count: > 0 } stops && FindStop(text, stops, before) is { } cut)
            {
                // The stop sequence and anything after it are not returned.
                string kept = text.ToString(before, Math.Max(0, cut - before));
                text.Length = cut;
                if (kept.Length > 0)
                {
                    var partial = e with { Text = kept };
                    emitted.Add(partial);
                    if (onToken is not null) await onToken(partial, kept).ConfigureAwait(false);
                }
                finish = "stop";
                break;
            }
            emitted.Add(e);
            if (onToken is not null) await onToken(e, piece).ConfigureAwait(false);
            if (step + 1 < s.MaxTokens) await seq.AppendAsync([t], ct).ConfigureAwait(false);
        }
        string prefix = s.Echo ? string.Concat(echoed.Select(x => x.Text)) : "";
        return new CompletionOutput(prefix + text, echoed, emitted, promptIds.Length, finish);
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

    private static int? FindStop(System.Text.StringBuilder text, IList<string> stops, int newFrom)
    {
        string s = text.ToString();
        int best = -1;
        foreach (var stop in stops)
        {
            int start = Math.Max(0, newFrom - stop.Length + 1);
            int at = s.IndexOf(stop, start, StringComparison.Ordinal);
            if (at >= 0 && (best < 0 || at < best)) best = at;
        }
        return best < 0 ? null : best;
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

    private static int Sample(float[] lp, float temperature, float topP, Random rng)
    {
        var p = new double[lp.Length];
        double max = double.NegativeInfinity;
        for (int i = 0; i < lp.Length; i++) max = Math.Max(max, lp[i] / temperature);
        double sum = 0;
        for (int i = 0; i < lp.Length; i++) sum += p[i] = Math.Exp(lp[i] / temperature - max);
        if (topP < 1)
        {
            var order = Enumerable.Range(0, p.Length).OrderByDescending(i => p[i]).ToArray();
            double acc = 0, keep = topP * sum;
            int cut = order.Length;
            for (int j = 0; j < order.Length; j++) { acc += p[order[j]]; if (acc >= keep) { cut = j + 1; break; } }
            for (int j = cut; j < order.Length; j++) p[order[j]] = 0;
            sum = acc;
        }
        double r = rng.NextDouble() * sum;
        for (int i = 0; i < p.Length; i++) { r -= p[i]; if (r <= 0 && p[i] > 0) return i; }
        return Array.FindLastIndex(p, x => x > 0);
    }
}
