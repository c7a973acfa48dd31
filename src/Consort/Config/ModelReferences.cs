using System.Text.Json.Nodes;

namespace Consort.Config;

/// <summary>Turns config model entries (strings or objects) into <see cref="ModelSpec"/>s.</summary>
public static class ModelReferences
{
    /// <summary>Keys a local GGUF model entry accepts.</summary>
    public static readonly string[] GgufKeys = ["name", "type", "path", "model", "context_size", "threads", "max_sequences", "seed", "lora", "unencodable"];
    /// <summary>Keys a nested collaboration entry accepts.</summary>
    public static readonly string[] CollaborationKeys = ["name", "type", "method", "models", "model_names", "hyperparameters"];

    /// <summary>
    /// Parses one entry. Strings: a .gguf path (absolute or relative to <paramref name="baseDirectory"/>),
    /// <c>hf:owner/repo[@revision]/path/file.gguf</c>, <c>zoo:name</c>, or the name of a model in <paramref name="pool"/>.
    /// Objects: <c>{"path"|"model": ..., "name": ...}</c>, <c>{"type": "openai", ...}</c> or <c>{"method": ..., "models": [...]}</c>.
    /// </summary>
    public static ModelSpec Parse(JsonNode? entry, string baseDirectory, IReadOnlyDictionary<string, ModelSpec>? pool = null, string where = "models")
    {
        switch (entry)
        {
            case JsonValue v when v.TryGetValue<string>(out var s):
                if (pool is not null && pool.TryGetValue(s, out var named)) return named;
                return FromReference(s, null, new JsonObject(), baseDirectory, where);
            case JsonObject o:
                return FromObject(o, baseDirectory, pool, where);
            default:
                throw new ConfigException($"{where}: a model entry must be a string or an object, got {MessageText.Escape(entry?.ToJsonString() ?? "null")}");
        }
    }

    private static ModelSpec FromObject(JsonObject o, string baseDirectory, IReadOnlyDictionary<string, ModelSpec>? pool, string where)
    {
        if (GatewaySpec.IsGatewayEntry(o)) return GatewaySpec.Parse(o, (d, at) => Parse(d, baseDirectory, pool, at), where);
        string? name = Str(o, "name", where);
        string? type = Str(o, "type", where)?.ToLowerInvariant();
        if (type == "openai" || (type is null && o.ContainsKey("base_url")))
            return new EndpointModelSpec(name ?? Str(o, "model", where) ?? "endpoint", o);
        if (type == "collaboration" || o.ContainsKey("method"))
        {
            CheckKeys(o, CollaborationKeys, name ?? "collaboration", where);
            string method = Str(o, "method", where) ?? throw new ConfigException($"{where}: collaboration '{name}' needs a 'method'");
            var membersNode = o["models"] ?? o["model_names"];
            if (membersNode is not JsonArray arr || arr.Count == 0)
                throw new ConfigException($"{where}: collaboration '{name ?? method}' needs a non-empty 'models' list");
            var members = arr.Select((m, i) => Parse(m, baseDirectory, pool, $"{where} > {name ?? method} > models[{i}]")).ToList();
            var hp = o["hyperparameters"] switch
            {
                null => new JsonObject(),
                JsonObject h => (JsonObject)h.DeepClone(),
                var other => throw new ConfigException($"{where}: 'hyperparameters' of '{name ?? method}' must be an object, got {MessageText.Escape(other.ToJsonString())}"),
            };
            return new CollaborationSpec(name ?? method, method, members, hp);
        }
        if (type is not null and not "gguf" and not "llama")
            throw new ConfigException($"{where}: model {MessageText.Quote(name)} has unknown type {MessageText.Quote(type)}; valid types: gguf, openai, collaboration");
        CheckKeys(o, GgufKeys, name ?? "model", where);
        string reference = Str(o, "path", where) ?? Str(o, "model", where)
            ?? throw new ConfigException($"{where}: model entry {MessageText.Escape(o.ToJsonString())} needs 'path' (a .gguf file or hf:/zoo: reference), 'base_url' or 'method'");
        if (pool is not null && pool.TryGetValue(reference, out var pooled) && name is null) return pooled;
        CheckLocalOptions(o, $"{where}: model {MessageText.Quote(name ?? reference)}");
        var options = new JsonObject();
        foreach (var key in new[] { "context_size", "threads", "max_sequences", "seed", "lora", "unencodable" })
            if (o[key] is { } value) options[key] = key == "lora" ? ResolveLora(value, baseDirectory) : value.DeepClone();
        return FromReference(reference, name, options, baseDirectory, where);
    }

    private static ModelSpec FromReference(string reference, string? name, JsonObject options, string baseDirectory, string where)
    {
        if (reference.StartsWith("hf:", StringComparison.OrdinalIgnoreCase))
        {
            var hf = HuggingFaceReference.Parse(reference);
            return new GgufModelSpec(name ?? System.IO.Path.GetFileNameWithoutExtension(hf.FilePath), reference, HuggingFaceHub.CachePath(hf), options);
        }
        if (reference.StartsWith("zoo:", StringComparison.OrdinalIgnoreCase))
        {
            // A zoo LoRA adapter is its base model with the adapter applied (before any adapters the entry adds).
            if (Consort.Training.Zoo.TryResolveAdapter(reference, out var basePath, out var adapterPath))
            {
                var lora = new JsonArray(JsonValue.Create(adapterPath));
                if (options["lora"] is JsonArray more) foreach (var item in more) lora.Add(item?.DeepClone());
                options["lora"] = lora;
                return new GgufModelSpec(name ?? reference[4..], reference, basePath, options);
            }
            return new GgufModelSpec(name ?? reference[4..], reference, Consort.Training.Zoo.ResolveModel(reference), options);
        }
        if (reference.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
        {
            var path = System.IO.Path.GetFullPath(System.IO.Path.Combine(baseDirectory, reference));
            return new GgufModelSpec(name ?? System.IO.Path.GetFileNameWithoutExtension(path), reference, path, options);
        }
        if (reference.Count(c => c == '/') == 1 && !reference.StartsWith('.') && !reference.StartsWith('/'))
            throw new ConfigException($"{where}: {MessageText.Quote(reference)} looks like a Hugging Face model id; Consort runs GGUF files locally: " +
                                      $"use 'hf:{reference}/FILE.gguf' for a GGUF in that repository, a path to a .gguf file, or an OpenAI-compatible endpoint entry");
        throw new ConfigException($"{where}: cannot tell what model {MessageText.Quote(reference)} is: expected a .gguf path, hf:owner/repo/file.gguf, zoo:NAME, " +
                                  "the name of a model defined in 'models', or an object with 'base_url' (endpoint) or 'method' (collaboration)");
    }

    // Adapter paths are relative to the config file, like model paths.
    private static JsonNode ResolveLora(JsonNode node, string baseDirectory)
    {
        JsonNode Fix(JsonNode? item) => item switch
        {
            JsonValue v when v.TryGetValue<string>(out var p) => JsonValue.Create(System.IO.Path.GetFullPath(p, baseDirectory))!,
            JsonObject o when o["path"] is JsonValue pv && pv.TryGetValue<string>(out var p2) =>
                new JsonObject { ["path"] = System.IO.Path.GetFullPath(p2, baseDirectory), ["scale"] = o["scale"]?.DeepClone() },
            _ => item?.DeepClone() ?? JsonValue.Create((string?)null)!,
        };
        return node is JsonArray arr ? new JsonArray(arr.Select(Fix).ToArray()) : new JsonArray(Fix(node));
    }

    /// <summary>
    /// Checks the numbers that size a local model's work against <see cref="Limits"/> before anything loads:
    /// <c>threads</c> (1..<see cref="Limits.MaxThreads"/>), <c>context_size</c> (2..<see cref="Limits.MaxContextTokens"/>),
    /// <c>max_sequences</c> (1..<see cref="Limits.MaxSequences"/>), <c>seed</c> (an integer) and <c>unencodable</c>.
    /// </summary>
    public static void CheckLocalOptions(JsonObject o, string where)
    {
        long? Int(string key)
        {
            if (o[key] is not { } node) return null;
            if (node is JsonValue v && v.GetValueKind() == System.Text.Json.JsonValueKind.Number && v.TryGetValue<long>(out long n)) return n;
            if (node is JsonValue d && d.GetValueKind() == System.Text.Json.JsonValueKind.Number && d.TryGetValue<double>(out double x) && x == Math.Floor(x) && Math.Abs(x) < 9e18) return (long)x;
            throw new ConfigException($"{where}: '{key}' must be a whole number, got {MessageText.Escape(node.ToJsonString())}");
        }
        if (Int("threads") is { } threads) Limits.Check(threads, 1, Limits.MaxThreads, "threads", where, $"4 per processor of this machine's {Environment.ProcessorCount}");
        if (Int("context_size") is { } ctx) Limits.Check(ctx, 2, Limits.MaxContextTokens, "context_size", where);
        if (Int("max_sequences") is { } seqs) Limits.Check(seqs, 1, Limits.MaxSequences, "max_sequences", where, "llama.cpp's sequence limit");
        if (Int("seed") is { } seed) Limits.Check(seed, int.MinValue, int.MaxValue, "seed", where);
        if (o["unencodable"] is { } u)
            Consort.LlamaCpp.LlamaModelOptions.ParseUnencodable(u is JsonValue uv && uv.TryGetValue<string>(out var us) ? us : u.ToJsonString(), where);
    }

    /// <summary>Rejects keys not in <paramref name="valid"/>, naming them.</summary>
    public static void CheckKeys(JsonObject o, IReadOnlyCollection<string> valid, string owner, string where)
    {
        foreach (var (key, _) in o)
            if (!valid.Contains(key))
                throw new ConfigException($"{where}: unknown key {MessageText.Quote(key)} in {MessageText.Quote(owner)}; valid keys: {string.Join(", ", valid)}");
    }

    private static string? Str(JsonObject o, string key, string where) => o[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        var other => throw new ConfigException($"{where}: '{key}' must be a string, got {MessageText.Escape(other.ToJsonString())}"),
    };
}
