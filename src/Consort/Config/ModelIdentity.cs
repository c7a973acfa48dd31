using System.Text.Json.Nodes;
using Consort.Evaluation;
using Consort.OpenAI;

namespace Consort.Config;

/// <summary>
/// What makes a model's outputs what they are, from its spec and without loading it: GGUF files by content digest
/// (and their LoRA adapters and load options), endpoints by URL and model name (and the logprobs they return),
/// collaborations by method, hyperparameters and members. <see cref="Tree"/> is the readable form a run definition
/// records; <see cref="Of(ModelSpec, int?, string?)"/> the short key a call cache uses.
/// </summary>
public static class ModelIdentity
{
    // Options that change what a local model computes (threads and slots do not).
    private static readonly string[] GgufResultOptions = ["context_size", "seed"];

    /// <summary>The identity tree of a spec; with <paramref name="names"/>, model names are included (a run definition
    /// shows them; a cache key must not depend on them).</summary>
    public static JsonObject Tree(ModelSpec spec, bool names = true)
    {
        var node = spec switch
        {
            GgufModelSpec g => Gguf(g),
            EndpointModelSpec e => Endpoint(e),
            CollaborationSpec c => new JsonObject
            {
                ["method"] = Consort.Methods.MethodRegistry.Find(c.Method)?.Metadata.Name ?? c.Method,
                ["hyperparameters"] = c.Hyperparameters.DeepClone(),
                ["members"] = new JsonArray(c.Members.Select(m => (JsonNode)Tree(m, names)).ToArray()),
            },
            // A gateway answers from any of its deployments (replicas of one model); fallbacks are left out: they answer
            // only when the deployments fail, and may name the gateway itself.
            GatewaySpec gw => new JsonObject { ["deployments"] = new JsonArray(gw.Deployments.Select(d => (JsonNode)Tree(d, names)).ToArray()) },
            _ => throw new ConfigException($"unsupported model spec {spec.GetType().Name}"),
        };
        if (names) node["name"] = spec.Name;
        return node;
    }

    /// <summary>The cache key of a spec ("gguf:DIGEST", "endpoint:URL#model", or "collab:DIGEST" for anything with
    /// options or members), with the seed and dev-data fingerprint a collaboration fits itself with.</summary>
    public static string Of(ModelSpec spec, int? seed = null, string? devFingerprint = null)
    {
        var tree = Tree(spec, names: false);
        if (spec is GgufModelSpec && tree.Count == 1 && tree["sha256"] is { } sha) return "gguf:" + sha.GetValue<string>();
        if (spec is EndpointModelSpec e && tree.Count == 3) return $"endpoint:{tree["base_url"]}#{tree["model"]}";
        if (spec is CollaborationSpec or GatewaySpec)
        {
            tree["seed"] = seed;
            tree["dev"] = devFingerprint;
        }
        string kind = spec switch { CollaborationSpec => "collab:", GatewaySpec => "gateway:", GgufModelSpec => "gguf:", _ => "endpoint:" };
        return kind + RunDefinition.HashJson(tree);
    }

    /// <summary>The identity of a local GGUF model (for its descriptor).</summary>
    public static string Of(GgufModelSpec g) => Of((ModelSpec)g);

    private static JsonObject Gguf(GgufModelSpec g)
    {
        var node = new JsonObject { ["sha256"] = File.Exists(g.Path) ? FileDigest.Of(g.Path) : "missing:" + g.Path };
        foreach (var key in GgufResultOptions)
            if (g.Options[key] is { } v) node[key] = v.DeepClone();
        if (g.Options["lora"] is JsonArray lora)
            node["lora"] = new JsonArray(lora.Select(a => (JsonNode)(a switch
            {
                JsonValue v when v.TryGetValue<string>(out var p) => new JsonObject { ["sha256"] = Digest(p), ["scale"] = 1.0 },
                JsonObject o when o["path"] is JsonValue pv && pv.TryGetValue<string>(out var p2) => new JsonObject { ["sha256"] = Digest(p2), ["scale"] = o["scale"]?.DeepClone() ?? 1.0 },
                _ => JsonValue.Create(a?.ToJsonString())!,
            })).ToArray());
        return node;
    }

    private static string Digest(string path) => File.Exists(path) ? FileDigest.Of(path) : "missing:" + path;

    private static JsonObject Endpoint(EndpointModelSpec e)
    {
        var o = OpenAIModelOptions.FromJson(e.Entry, e.Name);
        var node = new JsonObject { ["base_url"] = o.BaseUrl.TrimEnd('/'), ["model"] = o.Model, ["top_logprobs"] = o.TopLogprobs };
        if (o.Vocabulary is not null) node["vocabulary"] = o.Vocabulary;
        return node;
    }
}
