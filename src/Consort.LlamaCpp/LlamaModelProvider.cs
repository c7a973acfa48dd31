using System.Text.Json;
using System.Text.Json.Nodes;
using Consort.Config;
using Consort.Formats.Gguf;

namespace Consort.LlamaCpp;

/// <summary>
/// The llama.cpp backend as a model provider: local GGUF files (with optional LoRA adapters). Describing opens and
/// validates the file in managed code and checks every option of the entry; nothing native runs until creation.
/// </summary>
public sealed class LlamaModelProvider : IModelProvider
{
    /// <inheritdoc />
    public bool Handles(ModelSpec spec) => spec is GgufModelSpec;

    /// <inheritdoc />
    public ModelDescriptor Describe(ModelSpec spec)
    {
        var g = Gguf(spec);
        if (Directory.Exists(g.Path))
            throw new ConfigException($"model '{g.Name}': {g.Path} is a folder, not a .gguf file" + (g.Reference != g.Path ? $" (from '{g.Reference}')" : ""));
        if (!File.Exists(g.Path))
            throw new ConfigException($"model '{g.Name}': file not found: {g.Path}" + (g.Reference != g.Path ? $" (from '{g.Reference}')" : ""));
        var options = Options(g, seed: 0);
        using var f = GgufFile.Open(g.Path);
        if (f.FileKind == "adapter") throw new ConfigException($"model '{g.Name}': {g.Path} is a LoRA adapter; list it under \"lora\" of its base model");
        GgufValidator.ThrowIfInvalid(f); // llama.cpp must never see a file it would abort on
        foreach (var a in options.Adapters)
        {
            if (!File.Exists(a.Path)) throw new ConfigException($"model '{g.Name}': LoRA adapter not found: {a.Path}");
            // An adapter for another base makes llama.cpp fail (or worse) at load: refuse it here, before work.
            using var af = GgufFile.Open(a.Path);
            if (GgufAdapterCheck.Problem(f, af) is { } problem)
                throw new ConfigException($"model '{g.Name}': LoRA adapter {a.Path} does not fit {g.Path}: {problem}");
        }
        return new ModelDescriptor
        {
            Name = g.Name,
            Access = ModelAccess.Text | ModelAccess.FullLogits | ModelAccess.Weights,
            Vocabulary = f.Vocabulary ?? throw new ModelFileException(g.Path, "no tokenizer (tokenizer.ggml.tokens is missing)"),
            // As the loaded model will say (LlamaTokenModel): the entry's context, else the file's capped at 2048.
            ContextSize = options.ContextSize ?? Math.Min(f.ContextLength > 0 ? f.ContextLength : 2048, 2048),
            Architecture = f.Architecture,
            Parameters = f.ParameterCount,
            WeightsPath = g.Path,
            Adapters = options.Adapters.Select(a => new LoraReference(a.Path, a.Scale)).ToList(),
        };
    }

    /// <inheritdoc />
    public Task<ConsortModel> CreateAsync(ModelSpec spec, ModelBuildContext context, CancellationToken cancellationToken = default)
    {
        var g = Gguf(spec);
        var options = Options(g, context.Seed);
        return Task.Run(() => LlamaModelFactory.Load(options), cancellationToken);
    }

    /// <summary>The load options of an entry (context_size, threads, max_sequences, seed, lora, unencodable), each checked.</summary>
    public static LlamaModelOptions Options(GgufModelSpec g, int seed) => new()
    {
        Path = g.Path,
        Name = g.Name,
        ContextSize = Opt<int?>(g, "context_size"),
        Threads = Opt<int?>(g, "threads"),
        MaxSequences = Opt<int?>(g, "max_sequences") ?? 4,
        Seed = Opt<int?>(g, "seed") ?? seed,
        Adapters = Adapters(g).Select(a => new LoraAdapterOption(a.Path, a.Scale)).ToList(),
        Unencodable = LlamaModelOptions.ParseUnencodable(Opt<string>(g, "unencodable"), $"model '{g.Name}'"),
    };

    private static GgufModelSpec Gguf(ModelSpec spec) => spec as GgufModelSpec ?? throw new ArgumentException($"not a GGUF spec: {spec.Name}");

    private static T? Opt<T>(GgufModelSpec g, string key)
    {
        if (g.Options[key] is not { } node) return default;
        try { return node.Deserialize<T>(); }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new ConfigException($"model '{g.Name}': '{key}' has the wrong type ({Limits.ForMessage(node.ToJsonString())})", e);
        }
    }

    private static IEnumerable<(string Path, float Scale)> Adapters(GgufModelSpec g)
    {
        if (g.Options["lora"] is not { } node) yield break;
        var items = node as JsonArray ?? new JsonArray(node.DeepClone());
        var baseDir = Path.GetDirectoryName(g.Path) ?? ".";
        foreach (var item in items)
        {
            switch (item)
            {
                case JsonValue v when v.TryGetValue<string>(out var p):
                    yield return (Path.GetFullPath(p, baseDir), 1f);
                    break;
                case JsonObject o when o["path"] is JsonValue pv && pv.TryGetValue<string>(out var p2):
                    float scale = 1f;
                    // A scale may come from parsed JSON or from code (a double built into the entry).
                    if (o["scale"] is JsonValue dv && dv.TryGetValue(out double ds)) scale = (float)ds;
                    else if (o["scale"] is { } sn && !(sn is JsonValue sv && sv.TryGetValue(out scale)))
                        throw new ConfigException($"model '{g.Name}': a 'lora' scale must be a number, got {Limits.ForMessage(sn.ToJsonString())}");
                    yield return (Path.GetFullPath(p2, baseDir), scale);
                    break;
                default:
                    throw new ConfigException($"model '{g.Name}': each 'lora' entry is a path or {{\"path\": ..., \"scale\": ...}}, got {Limits.ForMessage(item?.ToJsonString())}");
            }
        }
    }
}
