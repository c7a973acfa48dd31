using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.AI;

namespace Consort.Server;

/// <summary>
/// <c>POST /v1/completions</c>: raw prompts. Models with token access decode here token by token (so logprobs, echo
/// and top alternatives are exact); text-only models answer through their chat client without logprobs.
/// </summary>
internal static class CompletionsEndpoint
{
    private static readonly string[] Known = ["model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "seed", "stop", "logprobs", "echo", "stream", "stream_options", "n", "user", "consort_trace"];

    private static readonly Dictionary<string, Func<JsonNode?, bool>> Unsupported = new()
    {
        ["suffix"] = v => v is JsonValue sv && sv.TryGetValue<string>(out var s) && s.Length == 0,
        ["best_of"] = v => v is JsonValue bv && bv.TryGetValue<int>(out var b) && b == 1,
        ["logit_bias"] = v => v is JsonObject { Count: 0 },
        ["frequency_penalty"] = v => v is JsonValue fv && fv.TryGetValue<double>(out var d) && d == 0,
        ["presence_penalty"] = v => v is JsonValue pv && pv.TryGetValue<double>(out var d) && d == 0,
    };

    public static async Task HandleAsync(HttpContext ctx, ServerState state, CancellationToken ct)
    {
        var body = await RequestBody.ReadAsync(ctx.Request, state.Options.MaxBodyBytes, ct);
        body.CheckFields(Known, Unsupported, "/v1/completions");
        var model = state.Resolve(ctx, body.RequireString("model"));
        string prompt = Prompt(body);
        if (state.Choices(body) != 1) throw new ApiError(400, "'n' > 1 is supported on /v1/chat/completions; /v1/completions answers one choice", param: "n", code: "unsupported_parameter");
        bool echo = body.Bool("echo") == true;
        int maxTokens = state.MaxTokens(body, 16, allowZero: echo);
        int logprobs = body.Int("logprobs") ?? 0;
        if (logprobs is < 0 or > 20) throw new ApiError(400, $"'logprobs' must be 0..20, got {logprobs}", param: "logprobs");
        int? topK = body.Int("top_k");
        if (topK is < 0) throw new ApiError(400, $"'top_k' must not be negative, got {topK}", param: "top_k");
        var settings = new CompletionSettings(maxTokens, body.FloatIn("temperature", 0, 2) ?? 1f, body.FloatIn("top_p", 0, 1) ?? 1f,
            body.Int("seed"), body.Stop(), logprobs, echo, topK is > 0 ? topK : null);
        if (body.Json["stream_options"] is { } so && (so is not JsonObject soo || soo.Any(kv => kv.Key != "include_usage")))
            throw new ApiError(400, "'stream_options' may only hold 'include_usage'", param: "stream_options");
        bool stream = body.Bool("stream") == true;
        bool trace = ServerState.WantsTrace(ctx, body);
        string id = "cmpl-" + Guid.NewGuid().ToString("N");
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

        if (model.Tokens is null)
        {
            if (logprobs > 0 || echo)
                throw new ApiError(400, $"model '{model.Name}' offers {model.Descriptor.AccessDescription}; 'logprobs' and 'echo' need token access",
                    param: logprobs > 0 ? "logprobs" : "echo");
            await ViaChatAsync(ctx, model, prompt, settings, stream, trace, id, created, ct);
            return;
        }

        JsonObject Chunk(string text, JsonNode? lps, string? finish) => new()
        {
            ["id"] = id,
            ["object"] = "text_completion",
            ["created"] = created,
            ["model"] = model.Name,
            ["choices"] = new JsonArray(new JsonObject { ["text"] = text, ["index"] = 0, ["logprobs"] = lps, ["finish_reason"] = finish }),
        };

        Func<IReadOnlyList<EmittedToken>, string, ValueTask>? onToken = null;
        int offset = 0;
        if (stream)
        {
            ServerState.StartEventStream(ctx);
            onToken = async (done, piece) =>
            {
                var lps = logprobs > 0 ? LegacyLogprobs(done, offset) : null;
                offset += done.Sum(e => e.Text.Length);
                await ServerState.WriteEventAsync(ctx, Chunk(piece, lps, null), ct);
            };
        }
        var output = await TokenCompletion.RunAsync(model.Tokens, prompt, settings, onToken, ct);
        var usage = ServerState.Usage(output.PromptTokenCount, output.Tokens.Count);
        ServerState.Record(ctx, model.Name, output.PromptTokenCount, output.Tokens.Count, model.Descriptor.CostOf(output.PromptTokenCount, output.Tokens.Count));
        if (stream)
        {
            var last = Chunk("", null, output.FinishReason);
            last["usage"] = usage;
            await ServerState.WriteEventAsync(ctx, last, ct);
            await ctx.Response.WriteAsync("data: [DONE]\n\n", ct);
            await ctx.Response.Body.FlushAsync(ct);
            return;
        }
        var json = Chunk(output.Text, logprobs > 0 ? LegacyLogprobs([.. output.PromptTokens, .. output.Tokens], 0) : null, output.FinishReason);
        json["usage"] = usage;
        if (trace) json["consort_trace"] = new JsonArray();
        await ConsortServer.WriteJson(ctx, json);
    }

    private static async Task ViaChatAsync(HttpContext ctx, ConsortModel model, string prompt, CompletionSettings s, bool stream, bool trace,
        string id, long created, CancellationToken ct)
    {
        List<ChatMessage> messages = [new(ChatRole.User, prompt)];
        var options = new ChatOptions { MaxOutputTokens = s.MaxTokens, Temperature = s.Temperature, TopP = s.TopP, Seed = s.Seed, StopSequences = s.Stop };
        JsonObject Chunk(string text, string? finish) => new()
        {
            ["id"] = id,
            ["object"] = "text_completion",
            ["created"] = created,
            ["model"] = model.Name,
            ["choices"] = new JsonArray(new JsonObject { ["text"] = text, ["index"] = 0, ["logprobs"] = null, ["finish_reason"] = finish }),
        };
        if (stream)
        {
            ServerState.StartEventStream(ctx);
            var updates = new List<ChatResponseUpdate>();
            await foreach (var u in model.Chat.GetStreamingResponseAsync(messages, options, ct))
            {
                updates.Add(u);
                if (u.Text.Length > 0) await ServerState.WriteEventAsync(ctx, Chunk(u.Text, null), ct);
            }
            var merged = updates.ToChatResponse();
            if (merged.FinishReason is null)
                throw new ApiError(502, $"the stream of model '{model.Name}' ended without a finish reason; the answer is incomplete", "server_error", code: "stream_incomplete");
            var (p, c) = ChatEndpoint.UsageOf(model, messages, merged, merged.Text);
            ServerState.Record(ctx, model.Name, p, c, ChatEndpoint.CostOf(model, merged, p, c));
            var last = Chunk("", ChatEndpoint.FinishReason(merged.FinishReason));
            last["usage"] = ServerState.Usage(p, c);
            await ServerState.WriteEventAsync(ctx, last, ct);
            await ctx.Response.WriteAsync("data: [DONE]\n\n", ct);
            return;
        }
        var r = await model.Chat.GetResponseAsync(messages, options, ct);
        var (pt, cpt) = ChatEndpoint.UsageOf(model, messages, r, r.Text);
        ServerState.Record(ctx, model.Name, pt, cpt, ChatEndpoint.CostOf(model, r, pt, cpt));
        var json = Chunk(r.Text, ChatEndpoint.FinishReason(r.FinishReason));
        json["usage"] = ServerState.Usage(pt, cpt);
        ChatEndpoint.AddConsortFields(json, r, trace);
        await ConsortServer.WriteJson(ctx, json);
    }

    private static string Prompt(RequestBody body)
    {
        if (!body.Json.TryGetPropertyValue("prompt", out var n) || n is null) throw new ApiError(400, "'prompt' is required", param: "prompt");
        if (n is JsonValue v && v.TryGetValue<string>(out var s)) return s;
        if (n is JsonArray a)
        {
            if (a.Count == 1 && a[0] is JsonValue v1 && v1.TryGetValue<string>(out var s1)) return s1;
            if (a.Count > 1 && a.All(x => x is JsonValue xv && xv.TryGetValue<string>(out _)))
                throw new ApiError(400, "only one prompt per request is supported", param: "prompt");
        }
        throw new ApiError(400, "'prompt' must be a string (token-id prompts are not supported)", param: "prompt");
    }

    // Legacy completions shape: {tokens, token_logprobs, top_logprobs:[{text: lp}], text_offset}.
    private static JsonObject LegacyLogprobs(IReadOnlyList<EmittedToken> tokens, int startOffset)
    {
        var toks = new JsonArray(); var lps = new JsonArray(); var tops = new JsonArray(); var offs = new JsonArray();
        int off = startOffset;
        foreach (var t in tokens)
        {
            toks.Add(t.Text);
            lps.Add(t.Logprob is { } l ? JsonValue.Create(l) : null);
            if (t.Top is null) tops.Add(null);
            else
            {
                var o = new JsonObject();
                foreach (var (text, lp) in t.Top) o[text] = lp;
                tops.Add(o);
            }
            offs.Add(off);
            off += t.Text.Length;
        }
        return new JsonObject { ["tokens"] = toks, ["token_logprobs"] = lps, ["top_logprobs"] = tops, ["text_offset"] = offs };
    }
}
