using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Consort.LlamaCpp;
using Consort.Weights.Config;
using Consort.Weights.Engine;

namespace Consort.Methods.Weight;

/// <summary>
/// <c>weight_merge</c>: merges the members' weights (mergekit semantics, streaming engine), loads the merged GGUF
/// through llama.cpp and returns it as a model, so a merge is evaluated side by side with single models.
/// Configure inline (merge_method, base_model, parameters, model_parameters, dtype) or with "config": a mergekit YAML.
/// Without "output" the merge goes to a cache folder keyed by the config and the inputs, and is reused.
/// </summary>
public sealed class WeightMergeMethod : ICollaborationMethod
{
    /// <inheritdoc />
    public string Name => "weight_merge";
    /// <inheritdoc />
    public CollaborationLevel Level => CollaborationLevel.Weight;
    /// <inheritdoc />
    public string Description => "Merge the members' weights (linear, task_arithmetic, ties, dare, slerp, breadcrumbs, model_stock, expo) and run the merged model.";
    /// <inheritdoc />
    public ModelAccess Requires => ModelAccess.Weights;
    /// <inheritdoc />
    public bool RequiresSharedVocabulary => true;
    /// <inheritdoc />
    public int MinModels => 1;
    /// <inheritdoc />
    public int MaxModels => int.MaxValue;
    /// <inheritdoc />
    public IReadOnlyList<HyperparameterSpec> Hyperparameters =>
    [
        new("config", "string", null, "A mergekit-style YAML file; when given, the other merge keys are not used."),
        new("merge_method", "string", "\"linear\"", "Merge method (mergekit names) when no config is given."),
        new("base_model", "string", null, "Base model: a member's name or a path."),
        new("parameters", "object", "{}", "Global merge parameters (normalize, lambda, t, ...)."),
        new("model_parameters", "object", "[]", "Per-member parameters, in member order (weight, density, ...)."),
        new("dtype", "string", null, "Output type: float32, float16, bfloat16 (default: as the inputs)."),
        new("seed", "int", "42", "Seed for random methods (DARE)."),
        new("output", "string", null, "Where to write the merged GGUF (default: a cache folder)."),
    ];

    /// <summary>Folder for merges without an explicit output (CONSORT_CACHE or ~/.cache/consort, then merges/).</summary>
    public static string CacheFolder => Path.Combine(Environment.GetEnvironmentVariable("CONSORT_CACHE") is { Length: > 0 } c ? c
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "consort"), "merges");

    /// <inheritdoc />
    public async Task<ConsortModel> CreateAsync(MethodContext context, CancellationToken cancellationToken = default)
    {
        var config = BuildConfig(context);
        var h = context.Hyperparameters;
        string dir = context.BaseDirectory ?? Environment.CurrentDirectory;
        string output = h.Has("output") ? Path.GetFullPath(Path.Combine(dir, h.Get<string>("output", "")))
            : Path.Combine(CacheFolder, CacheKey(config) + ".gguf");
        if (!output.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)) throw new ConfigException($"method '{Name}': output must be a .gguf file (llama.cpp runs the merged model), got {output}");
        if (!h.Has("output") && File.Exists(output))
            context.Log?.Invoke($"{context.Name}: reusing merged model {output}");
        else
        {
            var r = await Task.Run(() => MergeEngine.Run(config, output, ct: cancellationToken), cancellationToken).ConfigureAwait(false);
            context.Log?.Invoke($"{context.Name}: merged {r.Tensors} tensors ({config.MergeMethod}) into {output} in {r.Seconds:F2} s");
        }
        var loaded = LlamaModelFactory.Load(new LlamaModelOptions { Path = output, Name = context.Name, Seed = context.Seed });
        return new ConsortModel(loaded.Descriptor, loaded.Chat, loaded.Tokens, context.Models, Name, loaded);
    }

    /// <summary>The merge config for a run: the YAML named by "config", or one built from the inline keys.</summary>
    public static MergeConfig BuildConfig(MethodContext context)
    {
        var h = context.Hyperparameters;
        string dir = context.BaseDirectory ?? Environment.CurrentDirectory;
        if (h.Has("config")) return MergeConfig.Load(Path.Combine(dir, h.Get<string>("config", "")));
        var paths = context.Models.Select(m => m.Descriptor.WeightsPath ?? throw new ConfigException(
            $"method 'weight_merge': model '{m.Name}' has no weights file (only local GGUF models can be merged)")).ToList();
        var json = new JsonObject { ["merge_method"] = h.Get("merge_method", "linear") };
        if (h.Has("base_model"))
        {
            var b = h.Get<string>("base_model", "");
            int idx = context.Models.ToList().FindIndex(m => m.Name == b);
            json["base_model"] = idx >= 0 ? paths[idx] : Path.GetFullPath(Path.Combine(dir, b));
        }
        var perModel = h.Values["model_parameters"] as JsonArray;
        if (perModel is not null && perModel.Count != paths.Count)
            throw new ConfigException($"method 'weight_merge': model_parameters has {perModel.Count} entries for {paths.Count} models");
        var models = new JsonArray();
        for (int i = 0; i < paths.Count; i++)
        {
            var entry = new JsonObject { ["model"] = paths[i] };
            if (perModel?[i] is JsonObject p) entry["parameters"] = p.DeepClone();
            models.Add(entry);
        }
        json["models"] = models;
        if (h.Values["parameters"] is JsonObject g) json["parameters"] = g.DeepClone();
        if (h.Has("dtype")) json["dtype"] = h.Get<string>("dtype", "");
        json["seed"] = h.Get("seed", context.Seed);
        return MergeConfig.FromJson(json, dir, $"method 'weight_merge' ({context.Name})");
    }

    // Keyed by the config and each input's size and time, so an edited input is merged again.
    private static string CacheKey(MergeConfig c)
    {
        var sb = new StringBuilder(JsonSerializer.Serialize(new { c.MergeMethod, c.BaseModel, c.OutDtype, c.Seed, Models = c.Models.Select(m => m.Path) }));
        foreach (var m in c.Models) foreach (var (k, v) in m.Parameters.OrderBy(kv => kv.Key)) sb.Append($"|{k}={Describe(v)}");
        foreach (var (k, v) in c.Parameters.OrderBy(kv => kv.Key)) sb.Append($"|g:{k}={Describe(v)}");
        foreach (var p in c.AllPaths)
        {
            var fi = new FileInfo(p);
            sb.Append($"|{p}:{(fi.Exists ? fi.Length : -1)}:{(fi.Exists ? fi.LastWriteTimeUtc.Ticks : 0)}");
        }
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString())))[..24];
    }

    private static readonly string[] Probes = ["token_embd.weight", "output_norm.weight", "output.weight",
        .. Enumerable.Range(0, 8).SelectMany(l => new[] { $"blk.{l}.attn_q.weight", $"blk.{l}.attn_norm.weight", $"blk.{l}.ffn_up.weight" })];

    // Parameters are resolved on probe tensors: gradients and filters that differ give different keys.
    private static string Describe(MergeParameter p) => string.Join(",", Probes.Select(n => p.Resolve(n, 8)?.ToString() ?? "-"));
}
