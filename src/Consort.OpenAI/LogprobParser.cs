using System.Text.Json;

namespace Consort.OpenAI;

/// <summary>One position's log-probability as an endpoint reported it.</summary>
/// <param name="Token">Token text.</param>
/// <param name="Logprob">Its log-probability, or null (vLLM reports null for the first echoed prompt token).</param>
/// <param name="Top">The listed alternatives, most likely first (may be empty).</param>
/// <param name="TextOffset">Character offset in the full text, where the endpoint gave one.</param>
public sealed record TokenLogprob(string Token, float? Logprob, IReadOnlyList<(string Token, float Logprob)> Top, int? TextOffset = null);

/// <summary>
/// Parses the two logprob shapes OpenAI-compatible servers return in <c>choices[i].logprobs</c>:
/// chat style <c>{content:[{token, logprob, top_logprobs:[{token, logprob}]}]}</c> (OpenAI, vLLM, llama.cpp chat, some
/// llama.cpp builds on /v1/completions) and legacy completions <c>{tokens, token_logprobs, top_logprobs:[{"tok": lp}], text_offset}</c>.
/// </summary>
public static class LogprobParser
{
    /// <summary>Parses a <c>logprobs</c> object (either shape); null or JSON null gives an empty list.</summary>
    public static IReadOnlyList<TokenLogprob> Parse(JsonElement logprobs)
    {
        if (logprobs.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined) return [];
        if (logprobs.ValueKind != JsonValueKind.Object) throw new FormatException($"logprobs should be an object, got {logprobs.ValueKind}");
        if (logprobs.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.Array) return ParseChat(content);
        if (logprobs.TryGetProperty("tokens", out var tokens) && tokens.ValueKind == JsonValueKind.Array) return ParseLegacy(logprobs, tokens);
        if (logprobs.TryGetProperty("content", out var c2) && c2.ValueKind == JsonValueKind.Null) return [];
        throw new FormatException("logprobs has neither 'content' (chat shape) nor 'tokens' (completions shape)");
    }

    private static List<TokenLogprob> ParseChat(JsonElement content)
    {
        var list = new List<TokenLogprob>(content.GetArrayLength());
        int offset = 0;
        foreach (var item in content.EnumerateArray())
        {
            string token = TokenText(item);
            float? lp = item.TryGetProperty("logprob", out var l) && l.ValueKind == JsonValueKind.Number ? l.GetSingle() : null;
            var top = new List<(string, float)>();
            if (item.TryGetProperty("top_logprobs", out var t) && t.ValueKind == JsonValueKind.Array)
                foreach (var alt in t.EnumerateArray())
                    if (alt.TryGetProperty("logprob", out var al) && al.ValueKind == JsonValueKind.Number)
                        top.Add((TokenText(alt), al.GetSingle()));
            top.Sort((a, b) => b.Item2.CompareTo(a.Item2));
            list.Add(new TokenLogprob(token, lp, top, offset));
            offset += token.Length;
        }
        return list;
    }

    private static List<TokenLogprob> ParseLegacy(JsonElement logprobs, JsonElement tokens)
    {
        int n = tokens.GetArrayLength();
        var lps = logprobs.TryGetProperty("token_logprobs", out var tl) && tl.ValueKind == JsonValueKind.Array ? tl.EnumerateArray().ToArray() : [];
        var tops = logprobs.TryGetProperty("top_logprobs", out var tp) && tp.ValueKind == JsonValueKind.Array ? tp.EnumerateArray().ToArray() : [];
        var offs = logprobs.TryGetProperty("text_offset", out var to) && to.ValueKind == JsonValueKind.Array ? to.EnumerateArray().ToArray() : [];
        var list = new List<TokenLogprob>(n);
        int i = 0, running = 0;
        foreach (var tok in tokens.EnumerateArray())
        {
            string token = tok.GetString() ?? "";
            float? lp = i < lps.Length && lps[i].ValueKind == JsonValueKind.Number ? lps[i].GetSingle() : null;
            var top = new List<(string, float)>();
            if (i < tops.Length && tops[i].ValueKind == JsonValueKind.Object)
                foreach (var p in tops[i].EnumerateObject())
                    if (p.Value.ValueKind == JsonValueKind.Number) top.Add((p.Name, p.Value.GetSingle()));
            top.Sort((a, b) => b.Item2.CompareTo(a.Item2));
            int? off = i < offs.Length && offs[i].ValueKind == JsonValueKind.Number ? offs[i].GetInt32() : running;
            list.Add(new TokenLogprob(token, lp, top, off));
            running = (off ?? running) + token.Length;
            i++;
        }
        return list;
    }

    private static string TokenText(JsonElement item) =>
        item.TryGetProperty("token", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "";
}
