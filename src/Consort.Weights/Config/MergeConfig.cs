using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using YamlDotNet.RepresentationModel;

namespace Consort.Weights.Config;

/// <summary>One input model of a merge and its per-model parameters.</summary>
/// <param name="Path">Model file or folder (absolute).</param>
/// <param name="Parameters">Per-model parameters (weight, density, ...).</param>
public sealed record MergeModel(string Path, IReadOnlyDictionary<string, MergeParameter> Parameters);

/// <summary>One source of a slice: a model's layers [Start, End) and its per-model parameters.</summary>
/// <param name="Path">Model file or folder (absolute).</param>
/// <param name="Start">First layer taken.</param>
/// <param name="End">One past the last layer taken.</param>
/// <param name="Parameters">Per-model parameters for this slice.</param>
public sealed record MergeSliceSource(string Path, int Start, int End, IReadOnlyDictionary<string, MergeParameter> Parameters)
{
    /// <summary>Layers taken.</summary>
    public int Length => End - Start;
}

/// <summary>
/// One output slice of a mergekit <c>slices:</c> config: consecutive output layers, each merged from the same
/// relative layer of every source (all sources span the same number of layers).
/// </summary>
/// <param name="Sources">The sources merged into these layers.</param>
/// <param name="Parameters">Global parameters for this slice (override the config's).</param>
public sealed record MergeSlice(IReadOnlyList<MergeSliceSource> Sources, IReadOnlyDictionary<string, MergeParameter> Parameters)
{
    /// <summary>Output layers of the slice.</summary>
    public int Length => Sources[0].Length;
}

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

    /// <summary>
    /// mergekit <c>slices</c>: the output's layers slice by slice (layer-range merges and "frankenmerges"); null when
    /// the config lists whole <see cref="Models"/>. Embeddings come from the first slice's sources, the final norm and
    /// head from the last slice's, as in mergekit.
    /// </summary>
    public IReadOnlyList<MergeSlice>? Slices { get; init; }

    /// <summary>Every distinct model path, base first when given.</summary>
    public IReadOnlyList<string> AllPaths =>
        (BaseModel is null ? ModelPaths() : ModelPaths().Prepend(BaseModel)).Distinct().ToList();

    private IEnumerable<string> ModelPaths() => Slices is null ? Models.Select(m => m.Path) : Slices.SelectMany(s => s.Sources.Select(x => x.Path));

    /// <summary>
    /// The whole-model config that merges one slice's layers: its sources as models (with their parameters) and the
    /// config's global parameters overridden by the slice's.
    /// </summary>
    public MergeConfig ForSlice(int index)
    {
        var slice = Slices?[index] ?? throw new InvalidOperationException("the config has no slices");
        var globals = new Dictionary<string, MergeParameter>(Parameters);
        foreach (var (k, v) in slice.Parameters) globals[k] = v;
        return this with { Slices = null, Parameters = globals, Models = slice.Sources.Select(x => new MergeModel(x.Path, x.Parameters)).ToList() };
    }

    private static readonly HashSet<string> KnownKeys = ["merge_method", "base_model", "models", "slices", "parameters", "dtype", "out_dtype", "seed", "random_seed", "name", "tokenizer_source", "chat_template"];

    /// <summary>Loads a YAML file; relative model paths resolve against its folder, references (<c>zoo:NAME</c>,
    /// <c>hf:owner/repo/file</c>) through <paramref name="resolveReference"/>, which returns a local path.</summary>
    public static MergeConfig Load(string path, Func<string, string>? resolveReference = null)
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
        return FromObject(root, System.IO.Path.GetDirectoryName(path)!, path, resolveReference);
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

    private static MergeConfig FromObject(IDictionary<string, object?> root, string dir, string where, Func<string, string>? resolveReference = null)
    {
        foreach (var k in root.Keys)
            if (!KnownKeys.Contains(k))
                throw new ConfigException($"{where}: unknown key '{k}' (known: {string.Join(", ", KnownKeys)})");
        string Resolve(object? p, string what) => p is string s && s.Length > 0
            ? System.IO.Path.GetFullPath(System.IO.Path.Combine(dir, resolveReference is not null && System.Text.RegularExpressions.Regex.IsMatch(s, @"^[A-Za-z][A-Za-z0-9+.\-]+:(?![\\/])") ? resolveReference(s) : s))
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
        List<MergeSlice>? slices = null;
        if (root.TryGetValue("slices", out var sl) && sl is not null)
        {
            if (models.Count > 0) throw new ConfigException($"{where}: give either 'models' or 'slices', not both");
            if (sl is not IList<object?> sList || sList.Count == 0) throw new ConfigException($"{where}: 'slices' must be a non-empty list");
            slices = [];
            foreach (var (item, i) in sList.Select((x, i) => (x, i)))
            {
                string at = $"{where}: slices[{i}]";
                if (item is not IDictionary<string, object?> sm) throw new ConfigException($"{at} must be a mapping with 'sources'");
                foreach (var k in sm.Keys)
                    if (k is not ("sources" or "parameters")) throw new ConfigException($"{at}: unknown key '{k}' (known: sources, parameters)");
                if (G(sm, "sources") is not IList<object?> srcs || srcs.Count == 0) throw new ConfigException($"{at}: 'sources' must be a non-empty list");
                var sources = new List<MergeSliceSource>();
                foreach (var (src, j) in srcs.Select((x, j) => (x, j)))
                {
                    string sat = $"{at}.sources[{j}]";
                    if (src is not IDictionary<string, object?> m || !m.TryGetValue("model", out var mp)) throw new ConfigException($"{sat} needs 'model'");
                    foreach (var k in m.Keys)
                        if (k is not ("model" or "layer_range" or "parameters")) throw new ConfigException($"{sat}: unknown key '{k}' (known: model, layer_range, parameters)");
                    if (mp is IDictionary<string, object?> md) mp = G(md, "model");
                    if (G(m, "layer_range") is not IList<object?> { Count: 2 } range || range[0] is not double a || range[1] is not double b
                        || a != Math.Floor(a) || b != Math.Floor(b) || a < 0 || b <= a)
                        throw new ConfigException($"{sat}: 'layer_range' must be [start, end) with 0 <= start < end, e.g. [0, 16]");
                    sources.Add(new MergeSliceSource(Resolve(mp, $"{sat}.model"), (int)a, (int)b, Params(G(m, "parameters"), sat)));
                }
                if (sources.Select(x => x.Length).Distinct().Count() > 1)
                    throw new ConfigException($"{at}: every source must span the same number of layers, got {string.Join(", ", sources.Select(x => $"{System.IO.Path.GetFileName(x.Path)} [{x.Start}, {x.End})"))}");
                slices.Add(new MergeSlice(sources, Params(G(sm, "parameters"), at)));
            }
            models = slices.SelectMany(x => x.Sources).Select(x => x.Path).Distinct()
                .Select(p => new MergeModel(p, new Dictionary<string, MergeParameter>())).ToList();
        }
        int seed = 42;
        foreach (var key in new[] { "seed", "random_seed" })
            if (root.TryGetValue(key, out var sv) && sv is double sd) seed = (int)sd;
        string? outDtype = G(root, "out_dtype") as string ?? G(root, "dtype") as string;
        return new MergeConfig
        {
            MergeMethod = method, BaseModel = baseModel, Models = models, Parameters = Params(G(root, "parameters"), where),
            OutDtype = outDtype, Seed = seed, Name = G(root, "name") as string, Slices = slices,
        };
    }
}
