using System.Text.Json;
using System.Text.Json.Nodes;
using Consort.Methods;

namespace Consort.Config;

/// <summary>One collaboration (or single model) to evaluate.</summary>
/// <param name="Name">Name in results and tables.</param>
/// <param name="Model">What to build.</param>
public sealed record RunEntry(string Name, ModelSpec Model);

/// <summary>
/// A run swept over one hyperparameter (<c>"sweep": {"gamma": [0.1, 0.3]}</c>): one run per value, named
/// <c>name@key=value</c>, evaluated side by side and reported as one quality-cost curve.
/// </summary>
/// <param name="Name">The run's name before expansion.</param>
/// <param name="Key">The swept hyperparameter.</param>
/// <param name="Points">Each value and the name of the run that uses it, in config order.</param>
/// <param name="Members">The collaboration's member names.</param>
public sealed record SweepGroup(string Name, string Key, IReadOnlyList<(double Value, string Run)> Points, IReadOnlyList<string> Members);

/// <summary>
/// A run config, in the spirit of MoCo's: <c>{"method", "task", "models": [...], "hyperparameters": {...}}</c>
/// (MoCo's <c>model_names</c>, <c>task_type</c> and <c>gpu_ids</c> are accepted too). A config may also
/// list several <c>runs</c> over a shared model pool and ask for <c>baselines</c> (each model alone),
/// so single models and collaborations are compared side by side on the same items.
/// </summary>
public sealed class RunConfig
{
    /// <summary>Top-level keys.</summary>
    public static readonly string[] Keys =
    [
        "name", "method", "task", "task_type", "models", "model_names", "hyperparameters", "runs", "baselines",
        "seed", "concurrency", "split", "limit", "gpu_ids", "description", "collaborations", "server", "sweep",
    ];
    private static readonly string[] RunKeys = ["name", "method", "models", "model_names", "hyperparameters", "sweep"];

    /// <summary>Config file path (null for configs built in code).</summary>
    public string? FilePath { get; init; }
    /// <summary>Folder relative paths resolve against.</summary>
    public required string BaseDirectory { get; init; }
    /// <summary>Config name (default: file name).</summary>
    public required string Name { get; init; }
    /// <summary>The task node (string or object), or null for configs without a task (serving).</summary>
    public JsonNode? Task { get; init; }
    /// <summary>The model pool, by name, in config order.</summary>
    public required IReadOnlyList<ModelSpec> Models { get; init; }
    /// <summary>What to evaluate, in order.</summary>
    public required IReadOnlyList<RunEntry> Runs { get; init; }
    /// <summary>Seed for sampling and fitting.</summary>
    public int Seed { get; init; } = 42;
    /// <summary>Items evaluated concurrently.</summary>
    public int Concurrency { get; init; } = 4;
    /// <summary>Default split (CLI overrides).</summary>
    public string? Split { get; init; }
    /// <summary>Default item limit (CLI overrides).</summary>
    public int? Limit { get; init; }
    /// <summary>The raw JSON (echoed into results).</summary>
    public required JsonObject Raw { get; init; }
    /// <summary>Runs swept over a hyperparameter (their expanded runs are in <see cref="Runs"/>).</summary>
    public IReadOnlyList<SweepGroup> Sweeps { get; init; } = [];

    /// <summary>Reads and parses a config file.</summary>
    public static RunConfig Load(string path)
    {
        path = Path.GetFullPath(path);
        if (Directory.Exists(path)) throw new ConfigException($"{path}: is a folder, not a config file");
        if (!File.Exists(path)) throw new ConfigException($"config file not found: {path}");
        // Size, UTF-8, depth and duplicate keys checked while parsing (a duplicate key is an error naming it).
        var node = Consort.Formats.SafeJson.ParseNodeFile(path, Limits.MaxConfigBytes, "a run config", Consort.Formats.SafeJson.Kind.Config);
        if (node is not JsonObject obj) throw new ConfigException($"{path}: a config must be a JSON object");
        return Parse(obj, Path.GetDirectoryName(path)!, Path.GetFileNameWithoutExtension(path), path);
    }

    /// <summary>Parses a config object.</summary>
    public static RunConfig Parse(JsonObject obj, string baseDirectory, string defaultName = "run", string? filePath = null)
    {
        string where = filePath is null ? "config" : Path.GetFileName(filePath);
        foreach (var (key, _) in obj)
            if (!Keys.Contains(key))
                throw new ConfigException($"{where}: unknown key {MessageText.Quote(key)}; valid keys: {string.Join(", ", Keys)}");

        string name = Get<string>(obj, "name", where) ?? defaultName;
        var modelsNode = obj["models"] ?? obj["model_names"];
        if (obj["models"] is not null && obj["model_names"] is not null)
            throw new ConfigException($"{where}: give either 'models' or 'model_names', not both");
        var pool = new List<ModelSpec>();
        var byName = new Dictionary<string, ModelSpec>(StringComparer.Ordinal);
        if (modelsNode is JsonArray arr)
        {
            for (int i = 0; i < arr.Count; i++)
            {
                var spec = ModelReferences.Parse(arr[i], baseDirectory, byName, $"{where}: models[{i}]");
                if (!byName.TryAdd(spec.Name, spec))
                    throw new ConfigException($"{where}: two models are named {MessageText.Quote(spec.Name)}; give them distinct \"name\"s");
                pool.Add(spec);
            }
        }
        else if (modelsNode is not null) throw new ConfigException($"{where}: 'models' must be a list");

        var runs = new List<RunEntry>();
        var sweeps = new List<SweepGroup>();
        bool baselines = Get<bool?>(obj, "baselines", where) ?? false;
        if (baselines)
            foreach (var m in pool) runs.Add(new RunEntry(m.Name, m));

        if (obj["method"] is not null)
        {
            string method = Get<string>(obj, "method", where)!;
            MethodRegistry.Get(method); // unknown method: fail now, listing the valid ones
            if (pool.Count == 0) throw new ConfigException($"{where}: method {MessageText.Quote(method)} needs 'models'");
            var hp = obj["hyperparameters"] as JsonObject ?? (obj["hyperparameters"] is null ? new JsonObject() : throw new ConfigException($"{where}: 'hyperparameters' must be an object"));
            string runName = obj["runs"] is null && !baselines ? name : method;
            var spec = method.Equals("single_model", StringComparison.OrdinalIgnoreCase) && pool.Count == 1 && hp.Count == 0
                ? pool[0]
                : new CollaborationSpec(runName, method, pool, (JsonObject)hp.DeepClone());
            if (obj["sweep"] is { } sweep) runs.AddRange(Sweep(sweep, spec, where, sweeps));
            else runs.Add(new RunEntry(spec.Name, spec));
        }
        else if (obj["sweep"] is not null) throw new ConfigException($"{where}: 'sweep' given without a 'method'");
        else if (obj["hyperparameters"] is not null && obj["runs"] is null)
            throw new ConfigException($"{where}: 'hyperparameters' given without a 'method'");

        if (obj["runs"] is JsonArray runArr)
        {
            for (int i = 0; i < runArr.Count; i++)
            {
                string at = $"{where}: runs[{i}]";
                if (runArr[i] is JsonValue v && v.TryGetValue<string>(out var refName))
                {
                    var m = ModelReferences.Parse(v, baseDirectory, byName, at);
                    runs.Add(new RunEntry(m.Name, m));
                    continue;
                }
                if (runArr[i] is not JsonObject r) throw new ConfigException($"{at}: a run must be an object or a model name");
                ModelReferences.CheckKeys(r, RunKeys, Get<string>(r, "name", at) ?? "run", at);
                var runObj = (JsonObject)r.DeepClone();
                var runSweep = runObj["sweep"];
                runObj.Remove("sweep");
                if (runObj["models"] is null && runObj["model_names"] is null)
                    runObj["models"] = new JsonArray(pool.Select(p => (JsonNode)JsonValue.Create(p.Name)!).ToArray());
                var spec = ModelReferences.Parse(runObj, baseDirectory, byName, at);
                if (spec is CollaborationSpec c) MethodRegistry.Get(c.Method);
                if (runSweep is not null) runs.AddRange(Sweep(runSweep, spec, at, sweeps));
                else runs.Add(new RunEntry(spec.Name, spec));
            }
        }
        else if (obj["runs"] is not null) throw new ConfigException($"{where}: 'runs' must be a list");

        var duplicate = runs.GroupBy(r => r.Name).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new ConfigException($"{where}: two runs are named {MessageText.Quote(duplicate.Key)}; give them distinct \"name\"s");

        GatewaySpec.ResolveAll(pool.Concat(runs.Select(r => r.Model)), byName, where);
        JsonNode? task = obj["task"]?.DeepClone();
        if (obj["task_type"] is JsonNode tt)
        {
            task = task switch
            {
                JsonValue tv when tv.TryGetValue<string>(out var ds) => new JsonObject { ["dataset"] = ds, ["task_type"] = tt.DeepClone() },
                JsonObject to => WithTaskType(to, tt),
                null => throw new ConfigException($"{where}: 'task_type' given without a 'task'"),
                _ => task,
            };
        }

        return new RunConfig
        {
            FilePath = filePath,
            BaseDirectory = baseDirectory,
            Name = name,
            Task = task,
            Models = pool,
            Runs = runs,
            Seed = Get<int?>(obj, "seed", where) ?? 42,
            Concurrency = Limits.Check(Get<int?>(obj, "concurrency", where) ?? 4, 1, Limits.MaxConcurrency, "concurrency", where),
            Split = Get<string>(obj, "split", where),
            Limit = Get<int?>(obj, "limit", where) is { } limit ? Limits.Check(limit, 1, int.MaxValue, "limit", where) : null,
            Raw = obj,
            Sweeps = sweeps,
        };
    }

    // One run per value of the swept hyperparameter; each goes through the method's own checks like any run.
    private static IEnumerable<RunEntry> Sweep(JsonNode sweep, ModelSpec spec, string where, List<SweepGroup> groups)
    {
        if (spec is not CollaborationSpec c) throw new ConfigException($"{where}: 'sweep' needs a collaboration method, not a single model");
        if (sweep is not JsonObject o || o.Count != 1 || o.First().Value is not JsonArray values)
            throw new ConfigException($"{where}: 'sweep' must be an object naming one hyperparameter and its values, e.g. {{\"gamma\": [0.1, 0.3, 0.5]}}");
        var key = o.First().Key;
        if (values.Count is 0 or > Limits.MaxListOption) throw new ConfigException($"{where}: sweep '{key}' needs 1 to {Limits.MaxListOption} values, got {values.Count}");
        if (c.Hyperparameters.ContainsKey(key)) throw new ConfigException($"{where}: '{key}' is both a hyperparameter and swept; give it in one place");
        var points = new List<(double, string)>();
        var entries = new List<RunEntry>();
        foreach (var v in values)
        {
            if (v is not JsonValue jv || !jv.TryGetValue<double>(out var x) || !double.IsFinite(x))
                throw new ConfigException($"{where}: sweep '{key}' values must be numbers, got {MessageText.Escape(v?.ToJsonString() ?? "null")}");
            var name = $"{c.Name}@{key}={x.ToString(System.Globalization.CultureInfo.InvariantCulture)}";
            if (points.Any(p => p.Item2 == name)) throw new ConfigException($"{where}: sweep '{key}' lists {x} twice");
            var hp = (JsonObject)c.Hyperparameters.DeepClone();
            hp[key] = x;
            entries.Add(new RunEntry(name, c with { Name = name, Hyperparameters = hp }));
            points.Add((x, name));
        }
        groups.Add(new SweepGroup(c.Name, key, points, c.Members.Select(m => m.Name).ToArray()));
        return entries;
    }

    private static JsonObject WithTaskType(JsonObject task, JsonNode taskType)
    {
        task["task_type"] ??= taskType.DeepClone();
        return task;
    }

    /// <summary>Reads <paramref name="key"/> as <typeparamref name="T"/>; a value of another type is a <see cref="ConfigException"/> naming the key.</summary>
    public static T? Get<T>(JsonObject o, string key, string where)
    {
        if (o[key] is not { } node) return default;
        try { return node.Deserialize<T>(); }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new ConfigException($"{where}: '{key}' has the wrong type ({MessageText.Escape(node.ToJsonString())}; expected {typeof(T).Name.Replace("Nullable`1", Nullable.GetUnderlyingType(typeof(T))?.Name ?? "")})", e);
        }
    }
}
