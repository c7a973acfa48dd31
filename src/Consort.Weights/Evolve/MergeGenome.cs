using System.Globalization;
using Consort.Weights.Config;
using YamlDotNet.RepresentationModel;
using YamlDotNet.Serialization;

namespace Consort.Weights.Evolve;

/// <summary>
/// mergekit-evolve's genome: which models, method and grouping a search varies, and how a point of the search space
/// (a genotype: per layer group, model, filter set and parameter one number, flattened in that order) becomes a merge
/// config. Densities are |x| clamped to [0, 1]; weights are |x| unless allow_negative_weights, as mergekit maps them.
/// </summary>
public sealed record MergeGenome
{
    /// <summary>Parameters each method's genome varies (mergekit's METHOD_PARAM_MAPS, extended to the other weight/density methods).</summary>
    public static readonly IReadOnlyDictionary<string, string[]> MethodParameters = new Dictionary<string, string[]>
    {
        ["linear"] = ["weight"], ["task_arithmetic"] = ["weight"],
        ["ties"] = ["weight", "density"], ["dare_ties"] = ["weight", "density"], ["dare_linear"] = ["weight", "density"],
        ["della"] = ["weight", "density"], ["della_linear"] = ["weight", "density"],
        ["breadcrumbs"] = ["weight", "density"], ["breadcrumbs_ties"] = ["weight", "density"],
    };

    /// <summary>The models as written (paths or references).</summary>
    public required IReadOnlyList<string> Models { get; init; }
    /// <summary>The models' resolved paths.</summary>
    public required IReadOnlyList<string> ModelPaths { get; init; }
    /// <summary>merge_method.</summary>
    public required string MergeMethod { get; init; }
    /// <summary>base_model as written, or null.</summary>
    public string? BaseModel { get; init; }
    /// <summary>base_model resolved, or null.</summary>
    public string? BaseModelPath { get; init; }
    /// <summary>tokenizer_source, carried into the merges.</summary>
    public string? TokenizerSource { get; init; }
    /// <summary>Layers per parameter group (0: one group for all layers).</summary>
    public int LayerGranularity { get; init; }
    /// <summary>normalize of the merges (null: true for ties, dare_ties and linear, as mergekit).</summary>
    public bool? Normalize { get; init; }
    /// <summary>Whether weights may be negative.</summary>
    public bool AllowNegativeWeights { get; init; }
    /// <summary>Tensor-name filters: one parameter set per filter plus one for the rest.</summary>
    public IReadOnlyList<string> Filters { get; init; } = [];
    /// <summary>Interpolate parameters across layer groups (gradients) instead of a constant per group.</summary>
    public bool Smooth { get; init; }
    /// <summary>Layers of the models (set once the models are opened).</summary>
    public int Layers { get; init; }

    /// <summary>Parameters per model and set.</summary>
    public string[] Parameters => MethodParameters[MergeMethod];
    /// <summary>Layer groups.</summary>
    public int Groups => LayerGranularity > 0 ? Layers / LayerGranularity : 1;
    /// <summary>Length of a genotype.</summary>
    public int Dimension => Groups * Models.Count * (Filters.Count + 1) * Parameters.Length;

    /// <summary>mergekit's start: weights 1/n, densities 1 (or uniform [0, 1) with random_init).</summary>
    public double[] Initial(bool random, int seed)
    {
        var r = new Random(seed);
        var x = new double[Dimension];
        for (int i = 0; i < x.Length; i++)
            x[i] = random ? r.NextDouble() : i % Parameters.Length == 0 ? 1.0 / Models.Count : 1.0;
        return x;
    }

    private double Value(double[] x, int group, int model, int set, int param)
    {
        double v = x[((group * Models.Count + model) * (Filters.Count + 1) + set) * Parameters.Length + param];
        return Parameters[param] == "density" ? Math.Clamp(Math.Abs(v), 0, 1) : AllowNegativeWeights ? v : Math.Abs(v);
    }

    /// <summary>
    /// The merge recipe of a genotype as mergekit YAML would hold it (plain maps and lists): slices per layer group,
    /// or with smooth one models list with gradients; model references as the genome wrote them (<paramref name="resolved"/>: resolved to paths).
    /// </summary>
    public Dictionary<string, object?> Recipe(double[] x, bool resolved = false)
    {
        if (x.Length != Dimension) throw new ArgumentException($"a genotype of {x.Length} values for a genome of {Dimension}");
        // References (zoo:NAME, hf:...) as written, like mergekit's "original model references"; paths absolute, so the
        // recipe works wherever it is saved.
        string M(int i) => resolved || !MergeConfig.IsReference(Models[i]) ? ModelPaths[i] : Models[i];
        string? B() => BaseModel is null ? null : resolved || !MergeConfig.IsReference(BaseModel) ? BaseModelPath : BaseModel;
        object Param(int group, int model, int param) => Filters.Count == 0 ? Round(Value(x, group, model, 0, param))
            : Enumerable.Range(0, Filters.Count + 1).Select(s => (object)(s < Filters.Count
                ? new Dictionary<string, object?> { ["filter"] = Filters[s], ["value"] = Round(Value(x, group, model, s, param)) }
                : new Dictionary<string, object?> { ["value"] = Round(Value(x, group, model, s, param)) })).ToList();
        object SmoothParam(int model, int param) => Filters.Count == 0
            ? Groups == 1 ? Round(Value(x, 0, model, 0, param)) : Enumerable.Range(0, Groups).Select(g => (object)Round(Value(x, g, model, 0, param))).ToList()
            : Enumerable.Range(0, Filters.Count + 1).Select(s =>
            {
                object v = Groups == 1 ? Round(Value(x, 0, model, s, param)) : Enumerable.Range(0, Groups).Select(g => (object)Round(Value(x, g, model, s, param))).ToList();
                return (object)(s < Filters.Count ? new Dictionary<string, object?> { ["filter"] = Filters[s], ["value"] = v } : new Dictionary<string, object?> { ["value"] = v });
            }).ToList();
        var recipe = new Dictionary<string, object?> { ["merge_method"] = MergeMethod };
        if (BaseModel is not null) recipe["base_model"] = B();
        bool baseApart = BaseModelPath is not null && !ModelPaths.Contains(BaseModelPath);
        if (Smooth)
        {
            var models = Enumerable.Range(0, Models.Count).Select(m => (object)new Dictionary<string, object?>
            {
                ["model"] = M(m),
                ["parameters"] = Parameters.Select((p, pi) => (p, SmoothParam(m, pi))).ToDictionary(t => t.p, t => (object?)t.Item2),
            }).ToList();
            if (baseApart) models.Add(new Dictionary<string, object?> { ["model"] = B() });
            recipe["models"] = models;
        }
        else
        {
            int step = LayerGranularity > 0 ? LayerGranularity : Layers;
            recipe["slices"] = Enumerable.Range(0, Groups).Select(g =>
            {
                var sources = Enumerable.Range(0, Models.Count).Select(m => (object)new Dictionary<string, object?>
                {
                    ["model"] = M(m),
                    ["layer_range"] = new List<object> { g * step, (g + 1) * step },
                    ["parameters"] = Parameters.Select((p, pi) => (p, Param(g, m, pi))).ToDictionary(t => t.p, t => (object?)t.Item2),
                }).ToList();
                if (baseApart) sources.Add(new Dictionary<string, object?> { ["model"] = B(), ["layer_range"] = new List<object> { g * step, (g + 1) * step } });
                return (object)new Dictionary<string, object?> { ["sources"] = sources };
            }).ToList();
        }
        recipe["parameters"] = new Dictionary<string, object?> { ["normalize"] = Normalize ?? MergeMethod is "ties" or "dare_ties" or "linear", ["int8_mask"] = true };
        recipe["dtype"] = "bfloat16";
        if (TokenizerSource is not null) recipe["tokenizer_source"] = TokenizerSource;
        return recipe;
    }

    private static double Round(double v) => Math.Round(v, 6);

    /// <summary>The merge config of a genotype (models resolved), checked by the engine as any config.</summary>
    public MergeConfig ToMergeConfig(double[] x, int seed)
    {
        var json = System.Text.Json.Nodes.JsonNode.Parse(System.Text.Json.JsonSerializer.Serialize(Recipe(x, resolved: true)))!.AsObject();
        json["seed"] = seed;
        return MergeConfig.FromJson(json, Environment.CurrentDirectory, "merge-evolve genotype");
    }

    /// <summary>The recipe as mergekit YAML.</summary>
    public string ToYaml(double[] x) => new SerializerBuilder().Build().Serialize(Recipe(x));

    /// <summary>Reads the <c>genome</c> mapping of a mergekit-evolve config.</summary>
    public static MergeGenome Parse(YamlMappingNode g, Func<string, string> resolve, string where)
    {
        string? Str(string key) => g.Children.TryGetValue(new YamlScalarNode(key), out var v) ? (v as YamlScalarNode)?.Value : null;
        bool Flag(string key, bool fallback) => Str(key) switch
        {
            null => fallback,
            "true" or "True" => true,
            "false" or "False" => false,
            var s => throw new ConfigException($"{where}: genome.{key} '{s}' must be true or false"),
        };
        string[] known = ["models", "merge_method", "base_model", "tokenizer_source", "layer_granularity", "normalize", "allow_negative_weights", "filters", "smooth"];
        foreach (var k in g.Children.Keys.Select(k => ((YamlScalarNode)k).Value!))
            if (!known.Contains(k)) throw new ConfigException($"{where}: genome: unknown key '{k}' (known: {string.Join(", ", known)})");
        if (!g.Children.TryGetValue(new YamlScalarNode("models"), out var mn) || mn is not YamlSequenceNode ms || ms.Children.Count == 0)
            throw new ConfigException($"{where}: genome.models must be a non-empty list");
        var models = ms.Children.Select(m => (m as YamlScalarNode)?.Value ?? (m is YamlMappingNode mm && mm.Children.TryGetValue(new YamlScalarNode("model"), out var v) ? (v as YamlScalarNode)?.Value : null)
            ?? throw new ConfigException($"{where}: genome.models entries must be models")).ToList();
        var method = Str("merge_method") ?? throw new ConfigException($"{where}: genome.merge_method is required");
        if (!MethodParameters.ContainsKey(method))
            throw new ConfigException($"{where}: genome.merge_method '{method}' cannot be evolved (it can: {string.Join(", ", MethodParameters.Keys)})");
        var baseModel = Str("base_model");
        if (baseModel is null && method != "linear") throw new ConfigException($"{where}: genome.base_model is required for {method}");
        int granularity = 0;
        if (Str("layer_granularity") is { } lg && (!int.TryParse(lg, NumberStyles.None, CultureInfo.InvariantCulture, out granularity)))
            throw new ConfigException($"{where}: genome.layer_granularity '{lg}' must be a whole number >= 0");
        var filters = g.Children.TryGetValue(new YamlScalarNode("filters"), out var fn) && fn is YamlSequenceNode fs
            ? fs.Children.Select(f => (f as YamlScalarNode)?.Value ?? throw new ConfigException($"{where}: genome.filters must be strings")).ToList() : [];
        return new MergeGenome
        {
            Models = models, ModelPaths = models.Select(resolve).ToList(), MergeMethod = method,
            BaseModel = baseModel, BaseModelPath = baseModel is null ? null : resolve(baseModel), TokenizerSource = Str("tokenizer_source"),
            LayerGranularity = granularity, Normalize = Str("normalize") is null ? null : Flag("normalize", false),
            AllowNegativeWeights = Flag("allow_negative_weights", false), Filters = filters, Smooth = Flag("smooth", false),
        };
    }
}
