using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using YamlDotNet.RepresentationModel;

namespace Consort.Weights.Config;

/// <summary>One input model of a merge and its per-model parameters.</summary>
/// <param name="Path">Model file or folder (absolute).</param>
/// <param name="Parameters">Per-model parameters (weight, density, ...).</param>
public sealed record MergeModel(string Path, IReadOnlyDictionary<string, MergeParameter> Parameters)
{
    /// <summary>The model as the config wrote it (a relative path, or a reference such as <c>zoo:arith</c>); null when built in code.</summary>
    public string? Reference { get; init; }
}

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
public sealed partial record MergeConfig
{
    /// <summary>merge_method, e.g. "ties".</summary>
    public required string MergeMethod { get; init; }
    /// <summary>base_model (absolute path), or null.</summary>
    public string? BaseModel { get; init; }
    /// <summary>base_model as the config wrote it (a relative path or a reference), or null.</summary>
    public string? BaseModelReference { get; init; }
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

    /// <summary>mergekit <c>tokenizer</c> / <c>tokenizer_source</c>: the output vocabulary and how embedding rows are filled; null keeps the inputs' (shared) vocabulary.</summary>
    public TokenizerSettings? Tokenizer { get; init; }

    /// <summary>mergekit <c>chat_template</c>: "auto" (the inputs' most common), a built-in name (chatml, llama3, alpaca, mistral, exaone) or a Jinja template; null keeps the base's.</summary>
    public string? ChatTemplate { get; init; }

    /// <summary>mergekit <c>--out-shard-size</c>: most bytes per safetensors shard (null: one file).</summary>
    public long? OutShardSize { get; init; }

    /// <summary>mergekit <c>--allow-crimes</c>: merge models of different architectures.</summary>
    public bool AllowCrimes { get; init; }

    /// <summary>mergekit <c>--lazy-unpickle</c>: accepted and ignored (Consort always streams from memory-mapped files).</summary>
    public bool LazyUnpickle { get; init; }

    /// <summary>
    /// The resolver that turned model references (<c>zoo:NAME</c>, <c>hf:owner/repo/file</c>) into paths when the config
    /// was loaded; kept so configs derived from this one resolve the same way.
    /// </summary>
    public Func<string, string>? ResolveReference { get; init; }

    /// <summary>
    /// The resolver <see cref="Load"/> and <see cref="FromJson"/> use when none is passed (the CLI sets it at start-up).
    /// It receives a reference such as <c>zoo:arith</c> and returns a local path (or throws <see cref="ConfigException"/>).
    /// </summary>
    public static Func<string, string>? DefaultResolveReference { get; set; }

    /// <summary>True when <paramref name="model"/> is a reference (scheme of two or more letters and a colon, e.g. zoo:NAME, hf:owner/repo/file) rather than a path.</summary>
    public static bool IsReference(string model) => ReferencePattern().IsMatch(model);

    [System.Text.RegularExpressions.GeneratedRegex(@"^[A-Za-z][A-Za-z0-9+.\-]+:(?![\\/])")]
    private static partial System.Text.RegularExpressions.Regex ReferencePattern();

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

    private static readonly HashSet<string> KnownKeys = ["merge_method", "base_model", "models", "slices", "parameters", "dtype", "out_dtype", "seed", "random_seed", "name", "tokenizer_source", "tokenizer", "chat_template", "out_shard_size", "allow_crimes", "lazy_unpickle"];

    /// <summary>Loads a YAML file; relative model paths resolve against its folder, references through <paramref name="resolveReference"/> (or <see cref="DefaultResolveReference"/>).</summary>
    public static MergeConfig Load(string path, Func<string, string>? resolveReference = null)
    {
        path = System.IO.Path.GetFullPath(path);
        var yaml = SafeYaml.Load(path); // size, depth, alias expansion and duplicate keys bounded before loading
        if (yaml.Documents.Count == 0) throw new ConfigException($"{path}: empty config");
        var root = ToObject(yaml.Documents[0].RootNode) as IDictionary<string, object?> ?? throw new ConfigException($"{path}: top level must be a mapping");
        return FromObject(root, System.IO.Path.GetDirectoryName(path)!, path, resolveReference);
    }

    /// <summary>Builds a config from JSON (the shape of the YAML); relative paths resolve against <paramref name="baseDirectory"/>.</summary>
    public static MergeConfig FromJson(JsonObject json, string baseDirectory, string where = "merge config", Func<string, string>? resolveReference = null) =>
        FromObject((IDictionary<string, object?>)FromJsonNode(json)!, baseDirectory, where, resolveReference);

    private static object? FromJsonNode(JsonNode? n) => n switch
    {
        null => null,
        JsonObject o => o.ToDictionary(kv => kv.Key, kv => FromJsonNode(kv.Value)),
        JsonArray a => a.Select(FromJsonNode).ToList(),
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => v.GetValue<bool>(),
        JsonValue v => double.Parse(v.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture),
        _ => null, // JsonNode has no other kinds
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

    /// <summary>
    /// mergekit's size syntax (<c>parse_kmb</c>): a whole number, optionally with K, M or B (thousand, million, billion);
    /// e.g. 5B. At least 1M.
    /// </summary>
    public static long ParseSize(object value, string what)
    {
        string text = value switch { double d => d.ToString("R", CultureInfo.InvariantCulture), string s => s.Trim(), _ => "" };
        long mult = 1;
        if (text.Length > 0 && char.ToLowerInvariant(text[^1]) is 'k' or 'm' or 'b')
        {
            mult = char.ToLowerInvariant(text[^1]) switch { 'k' => 1_000, 'm' => 1_000_000, _ => 1_000_000_000 };
            text = text[..^1];
        }
        if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) || n <= 0 || n > long.MaxValue / mult)
            throw new ConfigException($"{what}: '{value}' is not a size (a whole number of bytes, optionally with K, M or B, e.g. 5B)");
        if (n * mult < 1_000_000) throw new ConfigException($"{what}: {n * mult} bytes is too small a shard (at least 1M)");
        return n * mult;
    }

    private static object? G(IDictionary<string, object?> d, string key) => d.TryGetValue(key, out var v) ? v : null;

    private static Dictionary<string, MergeParameter> Params(object? node, string where)
    {
        if (node is null) return new();
        if (node is not IDictionary<string, object?> m) throw new ConfigException($"{where}: 'parameters' must be a mapping");
        return m.ToDictionary(kv => kv.Key, kv => MergeParameter.From(kv.Value, $"{where}: parameter '{kv.Key}'"));
    }

    private static MergeConfig FromObject(IDictionary<string, object?> root, string dir, string where, Func<string, string>? resolveReference)
    {
        foreach (var k in root.Keys)
            if (!KnownKeys.Contains(k))
                throw new ConfigException($"{where}: unknown key '{k}' (known: {string.Join(", ", KnownKeys)})");
        var resolver = resolveReference ?? DefaultResolveReference;
        string Resolve(object? p, string what)
        {
            if (p is not string s || s.Length == 0) throw new ConfigException($"{where}: {what} must be a path");
            if (!IsReference(s)) return System.IO.Path.GetFullPath(System.IO.Path.Combine(dir, s));
            if (resolver is null) throw new ConfigException($"{where}: {what} '{s}' is a model reference, but nothing here resolves references (the consort CLI resolves zoo: and hf:); give a path");
            return System.IO.Path.GetFullPath(resolver(s));
        }
        var method = root.TryGetValue("merge_method", out var mm) && mm is string ms ? ms : throw new ConfigException($"{where}: 'merge_method' is required");
        string? baseModel = root.TryGetValue("base_model", out var bm) && bm is not null ? Resolve(bm is IDictionary<string, object?> bmd ? G(bmd, "model") : bm, "base_model") : null;
        var models = new List<MergeModel>();
        if (root.TryGetValue("models", out var ml) && ml is not null)
        {
            if (ml is not IList<object?> list) throw new ConfigException($"{where}: 'models' must be a list");
            foreach (var (item, i) in list.Select((x, i) => (x, i)))
            {
                if (item is string s) { models.Add(new MergeModel(Resolve(s, $"models[{i}]"), new Dictionary<string, MergeParameter>()) { Reference = s }); continue; }
                if (item is not IDictionary<string, object?> m || !m.TryGetValue("model", out var mp)) throw new ConfigException($"{where}: models[{i}] needs 'model'");
                if (mp is IDictionary<string, object?> md) mp = G(md, "model");
                models.Add(new MergeModel(Resolve(mp, $"models[{i}].model"), Params(G(m, "parameters"), $"{where}: models[{i}]")) { Reference = mp as string });
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
        if (G(root, "tokenizer_source") is not null && G(root, "tokenizer") is not null)
            throw new ConfigException($"{where}: give either 'tokenizer_source' or 'tokenizer', not both");
        var tokenizer = TokenizerSettings.Parse(G(root, "tokenizer_source") ?? G(root, "tokenizer"), G(root, "tokenizer") is not null, p => Resolve(p, "a tokenizer model"), where);
        if (G(root, "chat_template") is { } ct and not string) throw new ConfigException($"{where}: 'chat_template' must be a string (auto, a template name, or a Jinja template)");
        bool Flag(string key) => G(root, key) switch
        {
            null => false,
            bool b => b,
            var o => throw new ConfigException($"{where}: '{key}' must be true or false, got {o}"),
        };
        return new MergeConfig
        {
            MergeMethod = method, BaseModel = baseModel, BaseModelReference = (bm is IDictionary<string, object?> bmr ? G(bmr, "model") : bm) as string, Models = models, Parameters = Params(G(root, "parameters"), where),
            OutDtype = outDtype, Seed = seed, Name = G(root, "name") as string, Slices = slices,
            Tokenizer = tokenizer, ChatTemplate = G(root, "chat_template") as string,
            OutShardSize = G(root, "out_shard_size") is { } shard ? ParseSize(shard, $"{where}: 'out_shard_size'") : null,
            AllowCrimes = Flag("allow_crimes"), LazyUnpickle = Flag("lazy_unpickle"), ResolveReference = resolver,
        };
    }
}
