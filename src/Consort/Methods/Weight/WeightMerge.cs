using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Consort.Config;
using Consort.Weights.Config;
using Consort.Weights.Engine;

namespace Consort.Methods.Weight;

/// <summary>Options of <see cref="WeightMergeMethod"/>.</summary>
public sealed class WeightMergeOptions : MethodOptions
{
    /// <summary>A mergekit-style YAML file.</summary>
    [Option("A mergekit-style YAML file; when given, the other merge keys are not used.")]
    public string? Config { get; set; }

    /// <summary>Merge method (mergekit names).</summary>
    [Option("Merge method (mergekit names) when no config is given.")]
    public string MergeMethod { get; set; } = "linear";

    /// <summary>Base model: a member's name or a path.</summary>
    [Option("Base model: a member's name or a path (relative to the config).")]
    public string? BaseModel { get; set; }

    /// <summary>Global merge parameters.</summary>
    [Option("Global merge parameters (normalize, lambda, t, ...).")]
    public System.Text.Json.Nodes.JsonObject Parameters { get; set; } = new();

    /// <summary>Per-member parameters, in member order.</summary>
    [Option("Per-member parameters, in member order (weight, density, ...).", DefaultText = "[]")]
    public System.Text.Json.Nodes.JsonArray? ModelParameters { get; set; }

    /// <summary>Output type.</summary>
    [Option("Output type: float32, float16, bfloat16 (default: as the inputs).", DefaultText = "as the inputs")]
    public string? Dtype { get; set; }

    /// <summary>Seed for random methods.</summary>
    [Option("Seed for random methods (DARE).", DefaultText = "run seed")]
    public int? Seed { get; set; }

    /// <summary>Where to write the merged GGUF.</summary>
    [Option("Where to write the merged GGUF (default: a cache folder keyed by the merge and its inputs).", DefaultText = "cache folder")]
    public string? Output { get; set; }
}

/// <summary>
/// <c>weight_merge</c>: merges the members' weights (mergekit semantics, streaming engine), loads the merged GGUF
/// through the host's model loader and returns it as a model, so a merge is evaluated side by side with single models.
/// Configure inline (merge_method, base_model, parameters, model_parameters, dtype) or with "config": a mergekit YAML.
/// Without "output" the merge goes to a cache folder keyed by the config and the inputs, and is reused.
/// The whole merge config is built and checked when the run config is validated, before any work.
/// </summary>
[CollaborationMethod("weight_merge", CollaborationLevel.Weight,
    "Merge the members' weights (linear, task_arithmetic, ties, dare, slerp, breadcrumbs, model_stock, expo, ...) and run the merged model.",
    Reference = "mergekit (Goddard et al., 2024), https://github.com/arcee-ai/mergekit",
    Requires = ModelAccess.Weights, SharedVocabulary = true)]
public sealed class WeightMergeMethod : CollaborationMethod<WeightMergeOptions>
{
    /// <summary>Folder for merges without an explicit output (CONSORT_CACHE or ~/.cache/consort, then merges/).</summary>
    public static string CacheFolder => Path.Combine(Environment.GetEnvironmentVariable("CONSORT_CACHE") is { Length: > 0 } c ? c
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "consort"), "merges");

    /// <inheritdoc />
    protected override void Validate(WeightMergeOptions options, MethodPlan plan)
    {
        BuildConfig(options, plan.Members, plan.BaseDirectory, plan.Name, 42);
        if (options.Output is { } o && !o.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
            throw plan.Error("output", $"must be a .gguf file (the merged model is run), got {Limits.ForMessage(o)}");
    }

    /// <inheritdoc />
    protected override ModelDescriptor Describe(WeightMergeOptions options, MethodPlan plan) => new()
    {
        Name = plan.Name,
        Access = ModelAccess.Text | ModelAccess.FullLogits | ModelAccess.Weights,
        Vocabulary = plan.Members[0].Vocabulary,
        ContextSize = plan.MinContextSize,
        Architecture = plan.Members[0].Architecture,
        Parameters = plan.Members[0].Parameters,
    };

    /// <inheritdoc />
    protected override async Task<ConsortModel> CreateAsync(MethodContext context, WeightMergeOptions options, CancellationToken cancellationToken)
    {
        var loader = context.Loader ?? throw new ConsortException($"method '{Name}' needs a model loader to run the merged model (none was given by the host)");
        var config = BuildConfig(options, context.Models.Select(m => m.Descriptor).ToList(), context.BaseDirectory ?? Environment.CurrentDirectory, context.Name, context.Seed);
        string dir = context.BaseDirectory ?? Environment.CurrentDirectory;
        string output = options.Output is { } o ? Path.GetFullPath(Path.Combine(dir, o)) : Path.Combine(CacheFolder, CacheKey(config) + ".gguf");
        if (options.Output is null && File.Exists(output))
            context.Log?.Invoke($"{context.Name}: reusing merged model {output}");
        else
        {
            var r = await Task.Run(() => MergeEngine.Run(config, output, ct: cancellationToken), cancellationToken).ConfigureAwait(false);
            context.Log?.Invoke($"{context.Name}: merged {r.Tensors} tensors ({config.MergeMethod}) into {output} in {r.Seconds:F2} s");
        }
        var loaded = await loader.LoadAsync(new GgufModelSpec(context.Name, output, output, new System.Text.Json.Nodes.JsonObject { ["seed"] = context.Seed }), cancellationToken).ConfigureAwait(false);
        return new ConsortModel(loaded.Descriptor, loaded.Chat, loaded.Tokens, context.Models, Name, loaded);
    }

    /// <summary>The merge config for a run: the YAML named by "config", or one built from the inline keys and the members' weights files.</summary>
    public static MergeConfig BuildConfig(WeightMergeOptions h, IReadOnlyList<ModelDescriptor> members, string dir, string runName, int runSeed)
    {
        if (h.Config is { } file) return MergeConfig.Load(Path.Combine(dir, file));
        var paths = members.Select(m => m.WeightsPath ?? throw new ConfigException(
            $"method 'weight_merge': model '{m.Name}' has no weights file (only local GGUF models can be merged)")).ToList();
        var json = new System.Text.Json.Nodes.JsonObject { ["merge_method"] = h.MergeMethod };
        if (h.BaseModel is { } b)
        {
            int idx = members.ToList().FindIndex(m => m.Name == b);
            json["base_model"] = idx >= 0 ? paths[idx] : Path.GetFullPath(Path.Combine(dir, b));
        }
        if (h.ModelParameters is { } perModel && perModel.Count != paths.Count)
            throw new ConfigException($"method 'weight_merge': model_parameters has {perModel.Count} entries for {paths.Count} models");
        var models = new System.Text.Json.Nodes.JsonArray();
        for (int i = 0; i < paths.Count; i++)
        {
            var entry = new System.Text.Json.Nodes.JsonObject { ["model"] = paths[i] };
            if (h.ModelParameters?[i] is System.Text.Json.Nodes.JsonObject p) entry["parameters"] = p.DeepClone();
            models.Add(entry);
        }
        json["models"] = models;
        if (h.Parameters.Count > 0) json["parameters"] = h.Parameters.DeepClone();
        if (h.Dtype is { } dt) json["dtype"] = dt;
        json["seed"] = h.Seed ?? runSeed;
        return MergeConfig.FromJson(json, dir, $"method 'weight_merge' ({runName})");
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
