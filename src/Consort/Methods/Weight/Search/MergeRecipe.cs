using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Consort.Weights.Config;

namespace Consort.Methods.Weight.Search;

/// <summary>One input of a <see cref="MergeRecipe"/>: a model file, optionally with a LoRA adapter applied, and its parameters.</summary>
/// <param name="Model">Model file.</param>
/// <param name="Lora">LoRA adapter applied to <paramref name="Model"/> first (mergekit's <c>model+adapter</c>), or null.</param>
/// <param name="Parameters">Per-model parameters (weight, density, ...).</param>
public sealed record RecipeModel(string Model, string? Lora, IReadOnlyDictionary<string, double> Parameters);

/// <summary>
/// What a weight search found, as a mergekit configuration: written as YAML beside the results (<see cref="ToYaml"/>)
/// and, when no input carries a LoRA adapter, runnable by <c>consort merge</c> (<see cref="ToMergeConfig"/>).
/// LoRA combinations are written as mergekit's <c>task_arithmetic</c> over <c>base+adapter</c> inputs, which is
/// exactly base + Σ weight_i · ΔW_i with ΔW_i = (alpha/r) B_i A_i.
/// </summary>
public sealed record MergeRecipe
{
    /// <summary>mergekit merge_method.</summary>
    public required string MergeMethod { get; init; }
    /// <summary>base_model, or null.</summary>
    public string? BaseModel { get; init; }
    /// <summary>Inputs in order.</summary>
    public required IReadOnlyList<RecipeModel> Models { get; init; }
    /// <summary>Global parameters (normalize, lambda, ...).</summary>
    public IReadOnlyDictionary<string, double> Parameters { get; init; } = new Dictionary<string, double>();
    /// <summary>Output dtype.</summary>
    public string Dtype { get; init; } = "float16";
    /// <summary>Seed of random methods (DARE), or null.</summary>
    public int? Seed { get; init; }
    /// <summary>Comment lines written at the top (what found it, its score).</summary>
    public IReadOnlyList<string> Comments { get; init; } = [];

    /// <summary>Base + Σ scale_i · adapter_i (adapters applied by llama.cpp at load time, or merged as task arithmetic).</summary>
    public static MergeRecipe ForAdapters(string baseModel, IReadOnlyList<(string Adapter, double Scale)> adapters, IReadOnlyList<string>? comments = null) => new()
    {
        MergeMethod = "task_arithmetic", BaseModel = baseModel,
        Models = adapters.Select(a => new RecipeModel(baseModel, a.Adapter, new Dictionary<string, double> { ["weight"] = a.Scale })).ToList(),
        Parameters = new Dictionary<string, double> { ["normalize"] = 0 }, Comments = comments ?? [],
    };

    /// <summary>Σ coefficient_i · W_i over whole models (no normalization): soups, swarms and extrapolations.</summary>
    public static MergeRecipe ForCoefficients(IReadOnlyList<string> models, IReadOnlyList<double> coefficients, IReadOnlyList<string>? comments = null) => new()
    {
        MergeMethod = "linear",
        Models = models.Select((m, i) => new RecipeModel(m, null, new Dictionary<string, double> { ["weight"] = coefficients[i] })).ToList(),
        Parameters = new Dictionary<string, double> { ["normalize"] = 0 }, Comments = comments ?? [],
    };

    /// <summary>mergekit YAML text.</summary>
    public string ToYaml()
    {
        var sb = new StringBuilder();
        foreach (var c in Comments) sb.Append("# ").Append(c.Replace('\n', ' ')).Append('\n');
        sb.Append("merge_method: ").Append(MergeMethod).Append('\n');
        if (BaseModel is not null) sb.Append("base_model: ").Append(Quote(BaseModel)).Append('\n');
        sb.Append("models:\n");
        foreach (var m in Models)
        {
            sb.Append("  - model: ").Append(Quote(m.Lora is null ? m.Model : m.Model + "+" + m.Lora)).Append('\n');
            if (m.Parameters.Count == 0) continue;
            sb.Append("    parameters:\n");
            foreach (var (k, v) in m.Parameters) sb.Append("      ").Append(k).Append(": ").Append(Num(v)).Append('\n');
        }
        if (Parameters.Count > 0)
        {
            sb.Append("parameters:\n");
            foreach (var (k, v) in Parameters)
                sb.Append("  ").Append(k).Append(": ").Append(k is "normalize" or "rescale" or "int8_mask" ? (v != 0 ? "true" : "false") : Num(v)).Append('\n');
        }
        sb.Append("dtype: ").Append(Dtype).Append('\n');
        if (Seed is { } s) sb.Append("random_seed: ").Append(s).Append('\n');
        return sb.ToString();
    }

    /// <summary>Writes <see cref="ToYaml"/> to <paramref name="path"/> (atomically).</summary>
    public void Save(string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, ToYaml());
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>The merge as a Consort merge config (inputs without LoRA adapters only).</summary>
    public MergeConfig ToMergeConfig(string where)
    {
        if (Models.Any(m => m.Lora is not null))
            throw new InvalidOperationException("a recipe over LoRA adapters is applied at load time, not merged by the engine");
        var json = new JsonObject { ["merge_method"] = MergeMethod, ["dtype"] = Dtype };
        if (BaseModel is not null) json["base_model"] = BaseModel;
        json["models"] = new JsonArray(Models.Select(m =>
        {
            var p = new JsonObject();
            foreach (var (k, v) in m.Parameters) p[k] = v;
            return (JsonNode)new JsonObject { ["model"] = m.Model, ["parameters"] = p };
        }).ToArray());
        var g = new JsonObject();
        foreach (var (k, v) in Parameters) g[k] = k is "normalize" or "rescale" or "int8_mask" ? JsonValue.Create(v != 0) : JsonValue.Create(v);
        json["parameters"] = g;
        if (Seed is { } s) json["seed"] = s;
        return MergeConfig.FromJson(json, Environment.CurrentDirectory, where);
    }

    private static string Num(double v) => v.ToString("0.######", CultureInfo.InvariantCulture);

    private static string Quote(string s) => s.IndexOfAny([':', '#', ' ', '\'', '"']) >= 0 ? "'" + s.Replace("'", "''") + "'" : s;
}
