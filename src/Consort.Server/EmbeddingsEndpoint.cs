using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.AI;

namespace Consort.Server;

/// <summary><c>POST /v1/embeddings</c>: one vector per input text from a model that can embed (<see cref="ServerOptions.EmbeddingModels"/>).</summary>
internal static class EmbeddingsEndpoint
{
    private static readonly string[] Known = ["model", "input", "encoding_format", "user"];
    private static readonly Dictionary<string, Func<JsonNode?, bool>> Unsupported = new() { ["dimensions"] = _ => false };

    /// <summary>Most input texts in one request.</summary>
    public const int MaxInputs = 2048;

    public static async Task HandleAsync(HttpContext ctx, ServerState state, CancellationToken ct)
    {
        var body = await RequestBody.ReadAsync(ctx.Request, state.Options.MaxBodyBytes, ct);
        body.CheckFields(Known, Unsupported, "/v1/embeddings");
        string name = body.RequireString("model");
        if (!state.Embedders.TryGetValue(name, out var embedder))
        {
            if (state.Models.ContainsKey(name))
                throw new ApiError(400, $"model '{name}' does not embed; models that do: {(state.Embedders.Count == 0 ? "none (list them in server.embedding_models)" : string.Join(", ", state.Embedders.Keys))}",
                    param: "model", code: "model_cannot_embed");
            throw new ApiError(404, $"model '{name}' not found; embedding models: {string.Join(", ", state.Embedders.Keys)}", param: "model", code: "model_not_found");
        }
        ServerState.Allow(ctx, name);
        RequestInfo.Of(ctx).Model = name;
        var inputs = Inputs(body);
        string format = body.String("encoding_format") ?? "float";
        if (format is not ("float" or "base64")) throw new ApiError(400, $"'encoding_format' must be float or base64, got '{format}'", param: "encoding_format");

        var result = await embedder.GenerateAsync(inputs, cancellationToken: ct);
        var data = new JsonArray();
        for (int i = 0; i < result.Count; i++)
        {
            var v = result[i].Vector;
            JsonNode vector = format == "base64"
                ? JsonValue.Create(Convert.ToBase64String(MemoryMarshal.AsBytes(v.Span)))!
                : new JsonArray([.. v.ToArray().Select(x => (JsonNode)JsonValue.Create(x)!)]);
            data.Add(new JsonObject { ["object"] = "embedding", ["index"] = i, ["embedding"] = vector });
        }
        long tokens = result.Usage?.InputTokenCount ?? 0;
        ServerState.Record(ctx, name, tokens, 0, null);
        await ConsortServer.WriteJson(ctx, new JsonObject
        {
            ["object"] = "list",
            ["data"] = data,
            ["model"] = name,
            ["usage"] = new JsonObject { ["prompt_tokens"] = tokens, ["total_tokens"] = tokens },
        });
    }

    private static List<string> Inputs(RequestBody body)
    {
        var n = body.Json["input"] ?? throw new ApiError(400, "'input' is required (a string or an array of strings)", param: "input");
        List<string> list = n switch
        {
            JsonValue v when v.TryGetValue<string>(out var s) => [s],
            JsonArray a when a.All(x => x is JsonValue xv && xv.TryGetValue<string>(out _)) => [.. a.Select(x => x!.GetValue<string>())],
            JsonArray => throw new ApiError(400, "'input' must be a string or an array of strings (token-id input is not supported)", param: "input"),
            _ => throw new ApiError(400, "'input' must be a string or an array of strings", param: "input"),
        };
        if (list.Count == 0) throw new ApiError(400, "'input' must not be empty", param: "input");
        if (list.Count > MaxInputs) throw new ApiError(400, $"'input' has {list.Count} texts; at most {MaxInputs}", param: "input");
        if (list.Any(s => s.Length == 0)) throw new ApiError(400, "'input' must not contain empty strings", param: "input");
        return list;
    }
}
