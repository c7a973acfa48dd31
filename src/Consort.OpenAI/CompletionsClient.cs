using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Consort.OpenAI;

/// <summary>What a <c>/v1/completions</c> call returned.</summary>
/// <param name="Text">Completion text (with the prompt in front when echoed).</param>
/// <param name="Logprobs">Per-token logprobs (prompt tokens first when echoed).</param>
/// <param name="PromptTokens">Usage: prompt tokens.</param>
/// <param name="CompletionTokens">Usage: completion tokens.</param>
/// <param name="FinishReason">Why generation stopped.</param>
public sealed record CompletionResult(string Text, IReadOnlyList<TokenLogprob> Logprobs, long PromptTokens, long CompletionTokens, string? FinishReason);

/// <summary>
/// Minimal client for the legacy <c>/v1/completions</c> endpoint (the OpenAI .NET SDK keeps its client internal):
/// raw prompts, <c>echo</c> for prompt scoring and <c>logprobs: k</c> for next-token top-k.
/// </summary>
public sealed class CompletionsClient
{
    private readonly HttpClient _http;
    private readonly OpenAIModelOptions _o;
    private readonly Uri _url;
    private readonly string? _key;

    /// <summary>Creates a client over a (resilient) <paramref name="http"/>.</summary>
    public CompletionsClient(HttpClient http, OpenAIModelOptions options, string? apiKey)
    {
        _http = http; _o = options; _key = apiKey;
        _url = new Uri(options.BaseUrl.TrimEnd('/') + "/completions");
    }

    /// <summary>Calls the endpoint. Transport failures become <see cref="ConsortException"/> naming the model and URL.</summary>
    public async Task<CompletionResult> CompleteAsync(string prompt, int maxTokens, int logprobs, bool echo, float temperature = 0,
        CancellationToken cancellationToken = default)
    {
        var body = new JsonObject
        {
            ["model"] = _o.Model,
            ["prompt"] = prompt,
            ["max_tokens"] = maxTokens,
            ["temperature"] = temperature,
            ["echo"] = echo,
            ["stream"] = false,
        };
        if (logprobs > 0) body["logprobs"] = logprobs;
        string json;
        try
        {
            using var req = new HttpRequestMessage(HttpMethod.Post, _url)
            {
                Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"),
            };
            if (_key is not null) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _key);
            using var resp = await _http.SendAsync(req, HttpCompletionOption.ResponseContentRead, cancellationToken).ConfigureAwait(false);
            json = await resp.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
            if (!resp.IsSuccessStatusCode)
                throw new ConsortException($"model '{_o.Name}' at {_o.BaseUrl}: /completions answered HTTP {(int)resp.StatusCode}: {ErrorMessage(json)}");
        }
        catch (Exception e) when (ResilientHttp.Translate(e, _o, cancellationToken) is { } ce)
        {
            throw ce;
        }
        return Parse(json, _o.Name);
    }

    /// <summary>Parses a completions response body (either logprob shape).</summary>
    public static CompletionResult Parse(string json, string modelName)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            if (!root.TryGetProperty("choices", out var choices) || choices.ValueKind != JsonValueKind.Array || choices.GetArrayLength() == 0)
                throw new ConsortException($"model '{modelName}': completions response has no choices");
            var c = choices[0];
            string text = c.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "";
            var lps = c.TryGetProperty("logprobs", out var l) ? LogprobParser.Parse(l) : [];
            string? finish = c.TryGetProperty("finish_reason", out var f) && f.ValueKind == JsonValueKind.String ? f.GetString() : null;
            long pt = 0, ct = 0;
            if (root.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object)
            {
                if (u.TryGetProperty("prompt_tokens", out var p) && p.ValueKind == JsonValueKind.Number) pt = p.GetInt64();
                if (u.TryGetProperty("completion_tokens", out var q) && q.ValueKind == JsonValueKind.Number) ct = q.GetInt64();
            }
            return new CompletionResult(text, lps, pt, ct, finish);
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            throw new ConsortException($"model '{modelName}': malformed completions response: {e.Message}", e);
        }
    }

    private static string ErrorMessage(string body)
    {
        try
        {
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.TryGetProperty("error", out var e))
                return e.ValueKind == JsonValueKind.Object && e.TryGetProperty("message", out var m) ? m.GetString() ?? body : e.ToString();
        }
        catch (JsonException) { }
        return body.Length > 300 ? body[..300] + "…" : body;
    }
}
