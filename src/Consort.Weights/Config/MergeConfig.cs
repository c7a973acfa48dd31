using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using YamlDotNet.RepresentationModel;

namespace Consort.Weights.Config;

/// <summary>One input model of a merge and its per-model parameters.</summary>
/// <param name="Path">Model file or folder (absolute).</param>
/// <param name="Parameters">Per-model parameters (weight, density, ...).</param>
public sealed record MergeModel(string Path, IReadOnlyDictionary<string, MergeParameter> Parameters);

/// <summary>A mergekit-style merge configuration.</summary>
public sealed record MergeConfig
{
    /// <summary>merge_method, e.g. "ties".</summary>
    public required string MergeMethod { get; init; }
    /// <summary>base_model (absolute path), or null.</summary>
    public string? BaseModel { get; init; }
    /// <summary>models, in order.</summary>
    public required IReadOnlyList<MergeModel> Models { get; init; }
    /// <summary>Global parameters (normalize, lambda, t, ...).</summary>
    public IReadOnlyDictionary<string, MergeParameter> Parameters { get; init; } = new Dictionary<string, MergeParameter>();
    /// <summary>dtype / out_dtype of the output ("float16", "bfloat16", "float32"); null keeps the base's type.</summary>
    public string? OutDtype { get; init; }
    /// <summary>Seed for random methods (DARE).</summary>
    public int Seed { get; init; } = 42;
    /// <summary>Name written into the output.</summary>
    public string? Name { get; init; }

    /// <summary>Every distinct model path, base first when given.</summary>
    public IReadOnlyList<string> AllPaths =>
        (BaseModel is null ? Models.Select(m => m.Path) : Models.Select(m => m.Path).Prepend(BaseModel)).Distinct().ToList();

    private static readonly HashSet<string> KnownKeys = ["merge_method", "base_model", "models", "parameters", "dtype", "out_dtype", "seed", "random_seed", "name", "tokenizer_source", "chat_template"];

    /// <summary>Loads a YAML file; relative model paths resolve against its folder.</summary>
    public static MergeConfig Load(string path)
    {
        path = System.IO.Path.GetFullPath(path);
        if (!File.Exists(path)) throw new ConfigException($"{path}: merge config not found");
        YamlStream yaml = new();
        try
        {
            using var reader = new StreamReader(path);
            yaml.Load(reader);
        }
        catch (YamlDotNet.Core.YamlException e)
        {
            throw new ConfigException($"{path}: invalid YAML at line {e.Start.Line}: {e.Message}", e);
        }
        if (yaml.Documents.Count == 0) throw new ConfigException($"{path}: empty config");
        var root = ToObject(yaml.Documents[0].RootNode) as IDictionary<string, object?> ?? throw new ConfigException($"{path}: top level must be a mapping");
        return FromObject(root, System.IO.Path.GetDirectoryName(path)!, path);
    }

    /// <summary>Builds a config from JSON (the shape of the YAML); relative paths resolve against <paramref name="baseDirectory"/>.</summary>
    public static MergeConfig FromJson(JsonObject json, string baseDirectory, string where = "merge config") =>
        FromObject((IDictionary<string, object?>)FromJsonNode(json)!, baseDirectory, where);

    private static object? FromJsonNode(JsonNode? n) => n switch
    {
        null => null,
        JsonObject o => o.ToDictionary(kv => kv.Key, kv => FromJsonNode(kv.Value)),
        JsonArray a => a.Select(FromJsonNode).ToList(),
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => v.GetValue<bool>(),
        JsonValue v => double.Parse(v.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture),
    };

    private static object? ToObject(YamlNode node) => node switch
    {
        YamlMappingNode m => m.Children.ToDictionary(kv => ((YamlScalarNode)kv.Key).Value!, kv => ToObject(kv.Value)),
        YamlSequenceNode s => s.Children.Select(ToObject).ToList(),
        YamlScalarNode sc => sc.Value is null or "null" or "~" || (sc.Value == "" && sc.Style == YamlDotNet.Core.ScalarStyle.Plain) ? null
            : sc.Style is YamlDotNet.Core.ScalarStyle.SingleQuoted or YamlDotNet.Core.ScalarStyle.DoubleQuoted ? sc.Value
            : double.TryParse(sc.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d
            : sc.Value is "true" or "True" ? true : sc.Value is "false" or "False" ? false : sc.Value,
        _ => null,
    };

    private static object? G(IDictionary<string, object?> d, string key) => d.TryGetValue(key, out var v) ? v : null;

    private static Dictionary<string, MergeParameter> Params(object? node, string where)
    {
        if (node is null) return new();
        if (node is not IDictionary<string, object?> m) throw new ConfigException($"{where}: 'parameters' must be a mapping");
        return m.ToDictionary(kv => kv.Key, kv => MergeParameter.From(kv.Value, $"{where}: parameter '{kv.Key}'"));
    }

    private static MergeConfig FromObject(IDictionary<string, object?> root, string dir, string where)
    {
        foreach (var k in root.Keys)
            if (!KnownKeys.Contains(k))
                throw new ConfigException(k == "slices"
                    ? $"{where}: 'slices' (layer-range merges) is not supported; list whole models under 'models'"
                    : $"{where}: unknown key '{k}' (known: {string.Join(", ", KnownKeys)})");
        string Resolve(object? p, string what) => p is string s && s.Length > 0
            ? System.IO.Path.GetFullPath(System.IO.Path.Combine(dir, s))
            : throw new ConfigException($"{where}: {what} must be a path");
        var method = root.TryGetValue("merge_method", out var mm) && mm is string ms ? ms : throw new ConfigException($"{where}: 'merge_method' is required");
        string? baseModel = root.TryGetValue("base_model", out var bm) && bm is not null ? Resolve(bm is IDictionary<string, object?> bmd ? G(bmd, "model") : bm, "base_model") : null;
        var models = new List<MergeModel>();
        if (root.TryGetValue("models", out var ml) && ml is not null)
        {
            if (ml is not IList<object?> list) throw new ConfigException($"{where}: 'models' must be a list");
            foreach (var (item, i) in list.Select((x, i) => (x, i)))
            {
                if (item is string s) { models.Add(new MergeModel(Resolve(s, $"models[{i}]"), new Dictionary<string, MergeParameter>())); continue; }
                if (item is not IDictionary<string, object?> m || !m.TryGetValue("model", out var mp)) throw new ConfigException($"{where}: models[{i}] needs 'model'");
                if (mp is IDictionary<string, object?> md) mp = G(md, "model");
                models.Add(new MergeModel(Resolve(mp, $"models[{i}].model"), Params(G(m, "parameters"), $"{where}: models[{i}]")));
            }
        }
        int seed = 42;
        foreach (var key in new[] { "seed", "random_seed" })
            if (root.TryGetValue(key, out var sv) && sv is double sd) seed = (int)sd;
        string? outDtype = G(root, "out_dtype") as string ?? G(root, "dtype") as string;
        return new MergeConfig
        {
            MergeMethod = method, BaseModel = baseModel, Models = models, Parameters = Params(G(root, "parameters"), where),
            OutDtype = outDtype, Seed = seed, Name = G(root, "name") as string,
        };
    }
}
