using System.Globalization;
using System.Text.Json.Nodes;
using YamlDotNet.RepresentationModel;

namespace Consort.Weights.Evolve;

/// <summary>One fitness task: a run config's task (a dataset name such as zoo:arith, or a task object) and its weight.</summary>
/// <param name="Task">The task as a run config's "task" holds it.</param>
/// <param name="Weight">Its weight in the fitness (negative for lower-is-better metrics).</param>
/// <param name="Metric">"score" (the task's score; mergekit's default acc,none means the same) or a metric of the summary (f1, acc_norm, ...).</param>
public sealed record EvolveTask(JsonNode Task, double Weight, string Metric);

/// <summary>
/// A mergekit-evolve configuration: <c>genome</c> (<see cref="MergeGenome"/>), <c>tasks</c> (each a run config's
/// task: a dataset name or a task object, with weight and metric; or <c>run_config</c>: a run config whose task is
/// the fitness) and <c>limit</c> (items per task). mergekit's lm-eval options num_fewshot, shuffle,
/// apply_chat_template and fewshot_as_multiturn are accepted and not used.
/// </summary>
public sealed record EvolveConfig
{
    /// <summary>The search space.</summary>
    public required MergeGenome Genome { get; init; }
    /// <summary>The fitness tasks.</summary>
    public required IReadOnlyList<EvolveTask> Tasks { get; init; }
    /// <summary>Items per task and evaluation (null: all of the split).</summary>
    public int? Limit { get; init; }
    /// <summary>Start from a random genotype instead of mergekit's uniform weights.</summary>
    public bool RandomInit { get; init; }
    /// <summary>Split the fitness is measured on (dev by default: keep the test split for the final comparison).</summary>
    public string Split { get; init; } = "dev";
    /// <summary>The folder the config is in (task datasets are looked up there too).</summary>
    public required string Directory { get; init; }
    /// <summary>The config's text hash, to refuse resuming another config's run.</summary>
    public required string Hash { get; init; }

    /// <summary>Loads a YAML file; model paths resolve against its folder, references through <paramref name="resolve"/>.</summary>
    public static EvolveConfig Load(string path, Func<string, string>? resolve = null)
    {
        path = Path.GetFullPath(path);
        if (!File.Exists(path)) throw new ConfigException($"{path}: evolve config not found");
        var text = File.ReadAllText(path);
        var yaml = new YamlStream();
        try { yaml.Load(new StringReader(text)); }
        catch (YamlDotNet.Core.YamlException e) { throw new ConfigException($"{path}: invalid YAML at line {e.Start.Line}: {e.Message}", e); }
        if (yaml.Documents.Count == 0 || yaml.Documents[0].RootNode is not YamlMappingNode root) throw new ConfigException($"{path}: the top level must be a mapping");
        var dir = Path.GetDirectoryName(path)!;
        resolve ??= Config.MergeConfig.DefaultResolveReference;
        string Resolve(string s) => Config.MergeConfig.IsReference(s)
            ? Path.GetFullPath(resolve?.Invoke(s) ?? throw new ConfigException($"{path}: model '{s}' is a reference, but nothing here resolves references; give a path"))
            : Path.GetFullPath(Path.Combine(dir, s));
        string[] known = ["genome", "tasks", "run_config", "limit", "num_fewshot", "shuffle", "random_init", "apply_chat_template", "fewshot_as_multiturn", "split"];
        string? Str(string key) => root.Children.TryGetValue(new YamlScalarNode(key), out var v) ? (v as YamlScalarNode)?.Value : null;
        foreach (var k in root.Children.Keys.Select(k => ((YamlScalarNode)k).Value!))
            if (!known.Contains(k)) throw new ConfigException($"{path}: unknown key '{k}' (known: {string.Join(", ", known)})");
        if (!root.Children.TryGetValue(new YamlScalarNode("genome"), out var gn) || gn is not YamlMappingNode g) throw new ConfigException($"{path}: 'genome' is required");
        var genome = MergeGenome.Parse(g, Resolve, path);

        var tasks = new List<EvolveTask>();
        if (root.Children.TryGetValue(new YamlScalarNode("tasks"), out var tn))
        {
            if (tn is not YamlSequenceNode ts || ts.Children.Count == 0) throw new ConfigException($"{path}: 'tasks' must be a non-empty list");
            foreach (var (t, i) in ts.Children.Select((t, i) => (t, i)))
            {
                if (t is YamlScalarNode s) { tasks.Add(new EvolveTask(JsonValue.Create(s.Value!), 1, "score")); continue; }
                if (t is not YamlMappingNode m) throw new ConfigException($"{path}: tasks[{i}] must be a task name or a mapping with name/task, weight, metric");
                foreach (var k in m.Children.Keys.Select(k => ((YamlScalarNode)k).Value!))
                    if (k is not ("name" or "task" or "weight" or "metric")) throw new ConfigException($"{path}: tasks[{i}]: unknown key '{k}' (known: name, task, weight, metric)");
                var spec = m.Children.TryGetValue(new YamlScalarNode("task"), out var tv) ? ToJson(tv) : m.Children.TryGetValue(new YamlScalarNode("name"), out var nv) ? ToJson(nv) : null;
                if (spec is null) throw new ConfigException($"{path}: tasks[{i}] needs name or task");
                double weight = 1;
                if (m.Children.TryGetValue(new YamlScalarNode("weight"), out var wv) && (!double.TryParse((wv as YamlScalarNode)?.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out weight) || !double.IsFinite(weight)))
                    throw new ConfigException($"{path}: tasks[{i}].weight must be a finite number");
                var metric = m.Children.TryGetValue(new YamlScalarNode("metric"), out var mv) ? (mv as YamlScalarNode)?.Value ?? "score" : "score";
                metric = metric is "acc,none" or "acc" ? "score" : metric;
                if (metric is not ("score" or "acc_norm" or "f1" or "contains" or "exact"))
                    throw new ConfigException($"{path}: tasks[{i}].metric '{metric}' is not one Consort's evaluation reports (score, acc_norm, f1, contains, exact)");
                tasks.Add(new EvolveTask(spec, weight, metric));
            }
        }
        if (Str("run_config") is { } rc)
        {
            var rcPath = Path.GetFullPath(Path.Combine(dir, rc));
            if (!File.Exists(rcPath)) throw new ConfigException($"{path}: run_config {rcPath} not found");
            var task = JsonNode.Parse(File.ReadAllText(rcPath))?["task"] ?? throw new ConfigException($"{rcPath}: the run config has no 'task'");
            tasks.Add(new EvolveTask(task.DeepClone(), 1, "score"));
        }
        if (tasks.Count == 0) throw new ConfigException($"{path}: give 'tasks' (or 'run_config') to measure the merges on");
        int? limit = null;
        if (Str("limit") is { } l)
        {
            if (!int.TryParse(l, NumberStyles.None, CultureInfo.InvariantCulture, out var li) || li < 1) throw new ConfigException($"{path}: limit '{l}' must be a whole number >= 1");
            limit = li;
        }
        var hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text)))[..16];
        return new EvolveConfig
        {
            Genome = genome, Tasks = tasks, Limit = limit, RandomInit = Str("random_init") is "true" or "True",
            Split = Str("split") ?? "dev", Directory = dir, Hash = hash,
        };
    }

    private static JsonNode? ToJson(YamlNode n) => n switch
    {
        YamlScalarNode s => s.Style is YamlDotNet.Core.ScalarStyle.Plain && double.TryParse(s.Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? JsonValue.Create(d)
            : s.Style is YamlDotNet.Core.ScalarStyle.Plain && s.Value is "true" or "false" ? JsonValue.Create(s.Value == "true") : JsonValue.Create(s.Value),
        YamlSequenceNode q => new JsonArray(q.Children.Select(ToJson).ToArray()),
        YamlMappingNode m => new JsonObject(m.Children.Select(kv => KeyValuePair.Create(((YamlScalarNode)kv.Key).Value!, ToJson(kv.Value)))),
        _ => null,
    };
}
