using System.Diagnostics;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;

namespace Consort.Decoding;

/// <summary>How one generation decodes: length, sampling, seed and stop strings.</summary>
/// <param name="MaxTokens">Most tokens generated.</param>
/// <param name="Temperature">0 = greedy.</param>
/// <param name="TopK">Top-k cut (null or 0 = off).</param>
/// <param name="TopP">Nucleus cut (null or 1 = off).</param>
/// <param name="Seed">Seed of the sampler (null = unseeded).</param>
/// <param name="Stop">Stop strings: the text ends before the first one.</param>
public sealed record DecodeSettings(int MaxTokens, float Temperature = 0f, int? TopK = null, float? TopP = null, long? Seed = null, IReadOnlyList<string>? Stop = null)
{
    /// <summary>Default output limit when the options give none.</summary>
    public const int DefaultMaxTokens = 256;

    /// <summary>Settings from chat options (MaxOutputTokens, Temperature, TopK, TopP, Seed, StopSequences).</summary>
    public static DecodeSettings From(ChatOptions? o, long? defaultSeed = null, int defaultMaxTokens = DefaultMaxTokens) => new(
        o?.MaxOutputTokens ?? defaultMaxTokens, o?.Temperature ?? 0f, o?.TopK, o?.TopP, o?.Seed ?? defaultSeed,
        o?.StopSequences?.Where(x => !string.IsNullOrEmpty(x)).ToArray());

    /// <summary>A sampler for these settings, seeded as the settings say.</summary>
    public TokenSampler CreateSampler() =>
        new(Temperature, TopK, TopP, Seed is { } s ? new Random(unchecked((int)s ^ (int)(s >> 32))) : new Random());
}

/// <summary>What one generation produced.</summary>
/// <param name="Text">Output text (stop sequence removed).</param>
/// <param name="Tokens">Generated token ids (end token excluded).</param>
/// <param name="Logprobs">Untempered log-probability of each generated token.</param>
/// <param name="PromptTokens">Prompt length in tokens.</param>
/// <param name="Finish">Why it stopped.</param>
/// <param name="Sequence">The decoding sequence (the caller disposes it).</param>
/// <param name="Elapsed">Wall time.</param>
public sealed record GenerationResult(string Text, IReadOnlyList<int> Tokens, float[] Logprobs, int PromptTokens,
    ChatFinishReason Finish, ITokenSequence Sequence, TimeSpan Elapsed);

/// <summary>One event of a generation: a sampled token (with the stable text it released), or the final result.</summary>
/// <param name="Piece">Text that can no longer change, released at this step (may be empty).</param>
/// <param name="Result">Set on the last event only.</param>
/// <param name="Token">The sampled token (null on the final event).</param>
/// <param name="Logprob">Its untempered log-probability.</param>
/// <param name="Distribution">The distribution it was sampled from (for top alternatives).</param>
public readonly record struct GenerationEvent(string? Piece, GenerationResult? Result, int? Token = null, float? Logprob = null, TokenDistribution? Distribution = null);

/// <summary>
/// The one decode loop over any <see cref="ITokenModel"/> (local, remote, fused): samples token by token, stops on
/// end tokens, stop strings, the token limit or the context end, records each token's log-probability, and releases
/// text only when it can no longer change (no partial UTF-8 character, no possible start of a stop string), so that
/// streamed pieces concatenate to exactly the final text. Chat clients and the server's completions use it.
/// </summary>
public static class TokenGenerator
{
    /// <summary>Generates after <paramref name="prompt"/>; the final event's sequence is the caller's to dispose.</summary>
    public static async IAsyncEnumerable<GenerationEvent> GenerateAsync(ITokenModel model, IReadOnlyList<int> prompt, DecodeSettings settings,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var sw = Stopwatch.StartNew();
        if (settings.MaxTokens < 0) throw new ConsortException($"max output tokens must not be negative, got {settings.MaxTokens}");
        var sampler = settings.CreateSampler();
        var stops = settings.Stop?.Where(x => !string.IsNullOrEmpty(x)).ToArray() ?? [];
        var tokenizer = model.Tokenizer;
        var ends = tokenizer.EndTokens;
        int limit = model.Descriptor.ContextSize > 0 ? model.Descriptor.ContextSize : int.MaxValue;

        var seq = await model.StartAsync(prompt, cancellationToken).ConfigureAwait(false);
        var generated = new List<int>();
        var logprobs = new List<float>();
        string emitted = "";
        string text = "";
        var finish = ChatFinishReason.Length;
        bool handedOver = false;
        try
        {
            while (generated.Count < settings.MaxTokens)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var next = seq.Next;
                int token = sampler.Sample(next);
                if (ends.Contains(token)) { finish = ChatFinishReason.Stop; break; }
                generated.Add(token);
                float lp = next.LogProbabilities()[token];
                logprobs.Add(lp);
                text = tokenizer.Decode(generated);
                int stopAt = FindStop(text, stops);
                if (stopAt >= 0)
                {
                    text = text[..stopAt];
                    finish = ChatFinishReason.Stop;
                    string last = text.Length > emitted.Length && text.StartsWith(emitted, StringComparison.Ordinal) ? text[emitted.Length..] : "";
                    emitted = text;
                    yield return new GenerationEvent(last, null, token, lp, next);
                    break;
                }
                // Release what can no longer change.
                int safe = SafeLength(text, stops);
                string piece = "";
                if (safe > emitted.Length && text.StartsWith(emitted, StringComparison.Ordinal))
                {
                    piece = text[emitted.Length..safe];
                    emitted = text[..safe];
                }
                yield return new GenerationEvent(piece, null, token, lp, next);
                if (generated.Count >= settings.MaxTokens) break;
                if (seq.Tokens.Count + 1 > limit) break; // context full: finish as Length
                await seq.AppendAsync([token], cancellationToken).ConfigureAwait(false);
            }
            if (text.Length > emitted.Length && text.StartsWith(emitted, StringComparison.Ordinal))
                yield return new GenerationEvent(text[emitted.Length..], null);
            handedOver = true;
            yield return new GenerationEvent(null, new GenerationResult(text, generated, logprobs.ToArray(), prompt.Count, finish, seq, sw.Elapsed));
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
}
