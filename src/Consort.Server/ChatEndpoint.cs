using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.AI;

namespace Consort.Server;

/// <summary><c>POST /v1/chat/completions</c>: OpenAI chat requests onto a model's <see cref="IChatClient"/>.</summary>
internal static class ChatEndpoint
{
    /// <summary>Fields read and honoured.</summary>
    private static readonly string[] Known =
    [
        "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "seed", "stop", "frequency_penalty",
        "presence_penalty", "logprobs", "top_logprobs", "stream", "stream_options", "n", "user", "consort_trace", "metadata",
    ];

    /// <summary>OpenAI fields this server cannot honour: accepted only with values that change nothing, else refused.</summary>
    internal static readonly Dictionary<string, Func<JsonNode?, bool>> Unsupported = new()
    {
        ["tools"] = v => v is JsonArray { Count: 0 },
        ["functions"] = v => v is JsonArray { Count: 0 },
        ["tool_choice"] = v => v is JsonValue tv && tv.TryGetValue<string>(out var s) && s is "none" or "auto",
        ["function_call"] = v => v is JsonValue fv && fv.TryGetValue<string>(out var s) && s is "none" or "auto",
        ["parallel_tool_calls"] = _ => true, // meaningless without tools, which are refused above
        ["response_format"] = v => v is JsonObject o && o["type"] is JsonValue t && t.TryGetValue<string>(out var s) && s == "text" && o.Count == 1,
        ["logit_bias"] = v => v is JsonObject { Count: 0 },
        ["store"] = v => v is JsonValue sv && sv.TryGetValue<bool>(out var b) && !b,
        ["service_tier"] = v => v is JsonValue st && st.TryGetValue<string>(out var s) && s is "auto" or "default",
        ["modalities"] = v => v is JsonArray { Count: 1 } a && a[0] is JsonValue mv && mv.TryGetValue<string>(out var s) && s == "text",
        ["reasoning_effort"] = _ => false,
        ["audio"] = _ => false,
        ["prediction"] = _ => false,
        ["web_search_options"] = _ => false,
    };

    public static async Task HandleAsync(HttpContext ctx, ServerState state, CancellationToken ct)
    {
        var body = await RequestBody.ReadAsync(ctx.Request, state.Options.MaxBodyBytes, ct);
        body.CheckFields(Known, Unsupported, "/v1/chat/completions");
        var model = state.Resolve(ctx, body.RequireString("model"));
        var messages = ParseMessages(body, state.Options.MaxMessages);
        int n = state.Choices(body);
        var options = new ChatOptions
        {
            MaxOutputTokens = state.MaxTokens(body, state.Options.DefaultMaxTokens),
            Temperature = body.FloatIn("temperature", 0, 2),
            TopP = body.FloatIn("top_p", 0, 1),
            Seed = body.Long("seed"),
            StopSequences = body.Stop(),
            FrequencyPenalty = body.FloatIn("frequency_penalty", -2, 2),
            PresencePenalty = body.FloatIn("presence_penalty", -2, 2),
        };
        if (body.IntIn("top_k", 0, 100_000) is { } topK) options.TopK = topK;
        bool logprobs = body.Bool("logprobs") == true;
        body.IntIn("top_logprobs", 0, 20);
        if (body.Json["stream_options"] is { } so && (so is not JsonObject soo || soo.Any(kv => kv.Key != "include_usage")))
            throw new ApiError(400, "'stream_options' may only hold 'include_usage'", param: "stream_options");
        if (body.Json["metadata"] is { } md && md is not JsonObject)
            throw new ApiError(400, "'metadata' must be an object", param: "metadata");
        if (logprobs) options = options.RequestingLogprobs();
        bool trace = ServerState.WantsTrace(ctx, body);
        string id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

        if (body.Bool("stream") == true)
        {
            await StreamAsync(ctx, model, messages, options, n, logprobs, trace, body.Json["stream_options"]?["include_usage"]?.GetValue<bool>() == true, id, created, ct);
            return;
        }

        // n choices run side by side; with a seed each gets its own (seed + index) so they differ but stay reproducible.
        var responses = await Task.WhenAll(Enumerable.Range(0, n).Select(i => model.Chat.GetResponseAsync(messages, ForChoice(options, i), ct)));
        var choices = new JsonArray();
        long pt = 0, cpt = 0;
        decimal? cost = null;
        for (int i = 0; i < n; i++)
        {
            var r = responses[i];
            string text = r.Text;
            var (p, c) = UsageOf(model, messages, r, text);
            pt = i == 0 ? p : pt; // the prompt is counted once, as OpenAI does for n > 1
            cpt += c;
            if (CostOf(model, r, p, c) is { } rc) cost = (cost ?? 0) + rc;
            choices.Add(new JsonObject
            {
                ["index"] = i,
                ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = text },
                ["logprobs"] = logprobs ? LogprobsJson(model, r.GetTokenLogprobs(), text) : null,
                ["finish_reason"] = FinishReason(r.FinishReason),
            });
        }
        ServerState.Record(ctx, model.Name, pt, cpt, cost);
        var json = new JsonObject
        {
            ["id"] = id,
            ["object"] = "chat.completion",
            ["created"] = created,
            ["model"] = model.Name,
            ["choices"] = choices,
            ["usage"] = ServerState.Usage(pt, cpt),
        };
        if (cost is { } total) json["consort_cost"] = total;
        if (trace) json["consort_trace"] = n == 1
            ? JsonSerializer.SerializeToNode(responses[0].GetTrace(), ServerState.TraceJson)
            : new JsonArray([.. responses.Select(r => JsonSerializer.SerializeToNode(r.GetTrace(), ServerState.TraceJson))]);
        await ConsortServer.WriteJson(ctx, json);
    }

    internal static ChatOptions ForChoice(ChatOptions options, int index)
    {
        if (index == 0 || options.Seed is not { } seed) return options;
        var o = options.Clone();
        o.Seed = unchecked(seed + index);
        return o;
    }

    private static async Task StreamAsync(HttpContext ctx, ConsortModel model, List<ChatMessage> messages, ChatOptions options, int n,
        bool logprobs, bool trace, bool includeUsage, string id, long created, CancellationToken ct)
    {
        ServerState.StartEventStream(ctx);
        JsonObject Chunk(int index, JsonObject delta, JsonNode? lps, string? finish) => new()
        {
            ["id"] = id,
            ["object"] = "chat.completion.chunk",
            ["created"] = created,
            ["model"] = model.Name,
            ["choices"] = new JsonArray(new JsonObject { ["index"] = index, ["delta"] = delta, ["logprobs"] = lps, ["finish_reason"] = finish }),
        };
        long pt = 0, cpt = 0;
        decimal? cost = null;
        JsonObject? last = null;
        // Choices stream one after the other, each tagged with its index (what OpenAI clients reassemble).
        for (int i = 0; i < n; i++)
        {
            await ServerState.WriteEventAsync(ctx, Chunk(i, new JsonObject { ["role"] = "assistant", ["content"] = "" }, null, null), ct);
            var updates = new List<ChatResponseUpdate>();
            await foreach (var u in model.Chat.GetStreamingResponseAsync(messages, ForChoice(options, i), ct))
            {
                updates.Add(u);
                string piece = u.Text;
                if (piece.Length == 0) continue;
                JsonNode? lps = null;
                if (logprobs && u.AdditionalProperties?.TryGetValue(TokenLogprobExtensions.LogprobsKey, out var v) == true && v is float[] f)
                    lps = LogprobsJson(model, f, piece);
                await ServerState.WriteEventAsync(ctx, Chunk(i, new JsonObject { ["content"] = piece }, lps, null), ct);
            }
            var r = updates.ToChatResponse();
            // A stream that ends without saying why is not a complete answer: say so instead of a silent success.
            if (r.FinishReason is null)
                throw new ApiError(502, $"the stream of model '{model.Name}' ended without a finish reason; the answer is incomplete", "server_error", code: "stream_incomplete");
            // A trace or cost may arrive on any update; the merged response carries what was sent.
            foreach (var u in updates)
                if (u.AdditionalProperties is { } ap)
                    foreach (var (k, val) in ap)
                    {
                        r.AdditionalProperties ??= new();
                        r.AdditionalProperties.TryAdd(k, val);
                    }
            var (p, c) = UsageOf(model, messages, r, r.Text);
            pt = i == 0 ? p : pt;
            cpt += c;
            if (CostOf(model, r, p, c) is { } rc) cost = (cost ?? 0) + rc;
            last = Chunk(i, new JsonObject(), null, FinishReason(r.FinishReason));
            if (i == n - 1)
            {
                last["usage"] = ServerState.Usage(pt, cpt);
                if (cost is { } total) last["consort_cost"] = total;
                if (trace) last["consort_trace"] = JsonSerializer.SerializeToNode(r.GetTrace(), ServerState.TraceJson);
            }
            await ServerState.WriteEventAsync(ctx, last, ct);
        }
        ServerState.Record(ctx, model.Name, pt, cpt, cost);
        if (includeUsage)
            await ServerState.WriteEventAsync(ctx, new JsonObject
            {
                ["id"] = id, ["object"] = "chat.completion.chunk", ["created"] = created, ["model"] = model.Name,
                ["choices"] = new JsonArray(), ["usage"] = ServerState.Usage(pt, cpt),
            }, ct);
        await ctx.Response.WriteAsync("data: [DONE]\n\n", ct);
        await ctx.Response.Body.FlushAsync(ct);
    }

    internal static decimal? CostOf(ConsortModel model, ChatResponse r, long prompt, long completion) => r.GetCost() ?? model.Descriptor.CostOf(prompt, completion);

    internal static void AddConsortFields(JsonObject json, ChatResponse r, bool trace)
    {
        if (r.GetCost() is { } cost) json["consort_cost"] = cost;
        if (trace) json["consort_trace"] = JsonSerializer.SerializeToNode(r.GetTrace(), ServerState.TraceJson);
    }

    /// <summary>Key under which a collaboration that decodes as one model keeps its own token counts (members' totals are in Usage).</summary>
    internal const string OwnUsageKey = ConsortKeys.FusedUsage;

    internal static string FinishReason(ChatFinishReason? reason) =>
        reason is null ? "stop" : reason == ChatFinishReason.Length ? "length" : reason == ChatFinishReason.ContentFilter ? "content_filter"
            : reason == ChatFinishReason.ToolCalls ? "tool_calls" : "stop";

    // The answer's usage is the served model's own count, the same streamed or not. A logit fusion's non-streamed
    // response carries its members' totals in Usage (the work done, which the trace itemizes) and its own decode's
    // counts under OwnUsageKey; its stream reports only the latter. Reading the own counts first makes both agree.
    // Backends that report no usage still get counts: the model's own tokenizer where it has one.
    internal static (long Prompt, long Completion) UsageOf(ConsortModel model, IEnumerable<ChatMessage> messages, ChatResponse r, string text)
    {
        var usage = r.AdditionalProperties?.TryGetValue(OwnUsageKey, out var own) == true && own is UsageDetails u ? u : r.Usage;
        if (usage is { InputTokenCount: not null } || usage is { OutputTokenCount: not null })
            return (usage.InputTokenCount ?? 0, usage.OutputTokenCount ?? 0);
        if (model.Tokens?.Tokenizer is { } tok)
            return (messages.Sum(m => (long)tok.Encode(m.Text).Length), tok.Encode(text).Length);
        return (0, 0);
    }

    // Chat-shaped logprobs. Token texts come from the model's tokenizer when the counts agree; otherwise they are empty
    // (the backend gave only numbers).
    private static JsonObject? LogprobsJson(ConsortModel model, float[]? lps, string text)
    {
        if (lps is null) return null;
        string[]? pieces = null;
        if (model.Tokens?.Tokenizer is { } tok)
        {
            var ids = tok.Encode(text);
            if (ids.Length == lps.Length)
            {
                pieces = new string[ids.Length];
                string prev = "";
                for (int i = 0; i < ids.Length; i++)
                {
                    string upTo = tok.Decode(ids[..(i + 1)]);
                    pieces[i] = upTo.StartsWith(prev, StringComparison.Ordinal) ? upTo[prev.Length..] : tok.Decode([ids[i]]);
                    prev = upTo;
                }
            }
        }
        var content = new JsonArray();
        for (int i = 0; i < lps.Length; i++)
            content.Add(new JsonObject { ["token"] = pieces?[i] ?? "", ["logprob"] = lps[i], ["bytes"] = null, ["top_logprobs"] = new JsonArray() });
        return new JsonObject { ["content"] = content };
    }

    private static List<ChatMessage> ParseMessages(RequestBody body, int max)
    {
        if (!body.Json.TryGetPropertyValue("messages", out var node) || node is not JsonArray arr)
            throw new ApiError(400, "'messages' is required and must be an array", param: "messages");
        if (arr.Count == 0) throw new ApiError(400, "'messages' must not be empty", param: "messages");
        if (arr.Count > max) throw new ApiError(400, $"'messages' has {arr.Count} entries; this server allows at most {max}", param: "messages", code: "too_many_messages");
        var list = new List<ChatMessage>(arr.Count);
        for (int i = 0; i < arr.Count; i++)
        {
            if (arr[i] is not JsonObject m) throw new ApiError(400, $"messages[{i}] must be an object", param: $"messages[{i}]");
            string role = m["role"] is JsonValue rv && rv.TryGetValue<string>(out var r) ? r : throw new ApiError(400, $"messages[{i}].role is required", param: $"messages[{i}].role");
            var chatRole = role switch
            {
                "system" or "developer" => ChatRole.System,
                "user" => ChatRole.User,
                "assistant" => ChatRole.Assistant,
                "tool" => ChatRole.Tool,
                _ => throw new ApiError(400, $"messages[{i}].role '{role}' is not one of system, developer, user, assistant, tool", param: $"messages[{i}].role"),
            };
            string text = m["content"] switch
            {
                null => "",
                JsonValue v when v.TryGetValue<string>(out var s) => s,
                JsonArray parts => string.Concat(parts.Select((p, j) => p is JsonObject po && po["type"]?.GetValue<string>() == "text" && po["text"] is JsonValue tv && tv.TryGetValue<string>(out var t)
                    ? t
                    : throw new ApiError(400, $"messages[{i}].content[{j}]: only text parts are supported", param: $"messages[{i}].content"))),
                _ => throw new ApiError(400, $"messages[{i}].content must be a string or an array of text parts", param: $"messages[{i}].content"),
            };
            list.Add(new ChatMessage(chatRole, text));
        }
        return list;
    }
}
