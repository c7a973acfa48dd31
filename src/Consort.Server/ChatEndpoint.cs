using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.AI;

namespace Consort.Server;

/// <summary><c>POST /v1/chat/completions</c>: OpenAI chat requests onto a model's <see cref="IChatClient"/>.</summary>
internal static class ChatEndpoint
{
    public static async Task HandleAsync(HttpContext ctx, ServerState state, CancellationToken ct)
    {
        var body = await RequestBody.ReadAsync(ctx.Request, state.Options.MaxBodyBytes, ct);
        var model = state.Resolve(body.RequireString("model"));
        var messages = ParseMessages(body, state.Options.MaxMessages);
        ServerState.RequireSingleChoice(body);
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
        if (body.Int("top_k") is { } topK) options.TopK = topK;
        bool logprobs = body.Bool("logprobs") == true;
        if (body.Int("top_logprobs") is { } tl && (tl < 0 || tl > 20)) throw new ApiError(400, $"'top_logprobs' must be 0..20, got {tl}", param: "top_logprobs");
        if (logprobs) options = options.RequestingLogprobs();
        bool trace = ServerState.WantsTrace(ctx, body);
        string id = "chatcmpl-" + Guid.NewGuid().ToString("N");
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

        if (body.Bool("stream") == true)
        {
            await StreamAsync(ctx, model, messages, options, logprobs, trace, id, created, ct);
            return;
        }

        var r = await model.Chat.GetResponseAsync(messages, options, ct);
        string text = r.Text;
        var (pt, cpt) = UsageOf(model, messages, r.Usage, text);
        var choice = new JsonObject
        {
            ["index"] = 0,
            ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = text },
            ["logprobs"] = logprobs ? LogprobsJson(model, r.GetTokenLogprobs(), text) : null,
            ["finish_reason"] = FinishReason(r.FinishReason),
        };
        var json = new JsonObject
        {
            ["id"] = id,
            ["object"] = "chat.completion",
            ["created"] = created,
            ["model"] = model.Name,
            ["choices"] = new JsonArray(choice),
            ["usage"] = ServerState.Usage(pt, cpt),
        };
        AddConsortFields(json, r, trace);
        await ConsortServer.WriteJson(ctx, json);
    }

    private static async Task StreamAsync(HttpContext ctx, ConsortModel model, List<ChatMessage> messages, ChatOptions options,
        bool logprobs, bool trace, string id, long created, CancellationToken ct)
    {
        ServerState.StartEventStream(ctx);
        JsonObject Chunk(JsonObject delta, JsonNode? lps, string? finish) => new()
        {
            ["id"] = id,
            ["object"] = "chat.completion.chunk",
            ["created"] = created,
            ["model"] = model.Name,
            ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = delta, ["logprobs"] = lps, ["finish_reason"] = finish }),
        };
        await ServerState.WriteEventAsync(ctx, Chunk(new JsonObject { ["role"] = "assistant", ["content"] = "" }, null, null), ct);
        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in model.Chat.GetStreamingResponseAsync(messages, options, ct))
        {
            updates.Add(u);
            string piece = u.Text;
            if (piece.Length == 0) continue;
            JsonNode? lps = null;
            if (logprobs && u.AdditionalProperties?.TryGetValue(TokenLogprobExtensions.LogprobsKey, out var v) == true && v is float[] f)
                lps = LogprobsJson(model, f, piece);
            await ServerState.WriteEventAsync(ctx, Chunk(new JsonObject { ["content"] = piece }, lps, null), ct);
        }
        var r = updates.ToChatResponse();
        var (pt, cpt) = UsageOf(model, messages, r.Usage, r.Text);
        var last = Chunk(new JsonObject(), null, FinishReason(r.FinishReason));
        last["usage"] = ServerState.Usage(pt, cpt);
        // A trace or cost may arrive on any update; the merged response carries what was sent.
        foreach (var u in updates)
            if (u.AdditionalProperties is { } ap)
                foreach (var (k, val) in ap)
                {
                    r.AdditionalProperties ??= new();
                    r.AdditionalProperties.TryAdd(k, val);
                }
        AddConsortFields(last, r, trace);
        await ServerState.WriteEventAsync(ctx, last, ct);
        await ctx.Response.WriteAsync("data: [DONE]\n\n", ct);
        await ctx.Response.Body.FlushAsync(ct);
    }

    internal static void AddConsortFields(JsonObject json, ChatResponse r, bool trace)
    {
        if (r.GetCost() is { } cost) json["consort_cost"] = cost;
        if (trace) json["consort_trace"] = JsonSerializer.SerializeToNode(r.GetTrace(), ServerState.TraceJson);
    }

    internal static string FinishReason(ChatFinishReason? reason) =>
        reason is null ? "stop" : reason == ChatFinishReason.Length ? "length" : reason == ChatFinishReason.ContentFilter ? "content_filter"
            : reason == ChatFinishReason.ToolCalls ? "tool_calls" : "stop";

    // Backends that report no usage still get counts: the model's own tokenizer where it has one.
    internal static (long Prompt, long Completion) UsageOf(ConsortModel model, IEnumerable<ChatMessage> messages, UsageDetails? usage, string text)
    {
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
