using System.Text.Json.Nodes;
using Consort.Caching;
using Consort.Config;
using Consort.Evaluation;
using Consort.Formats.Gguf;
using Consort.Methods;
using Microsoft.Extensions.Caching.Distributed;

namespace Consort.Cli.Commands;

/// <summary>What the user asked <c>consort run</c> (or <c>validate</c>, <c>chat</c>) for.</summary>
public sealed record RunRequest
{
    /// <summary>The run config file.</summary>
    public required string ConfigPath { get; init; }
    /// <summary>--out (default runs/&lt;config name&gt;).</summary>
    public string? OutDir { get; init; }
    /// <summary>--split.</summary>
    public string? Split { get; init; }
    /// <summary>--limit.</summary>
    public int? Limit { get; init; }
    /// <summary>--concurrency.</summary>
    public int? Concurrency { get; init; }
    /// <summary>--only.</summary>
    public IReadOnlyList<string> Only { get; init; } = [];
    /// <summary>--shard i/n.</summary>
    public ShardSpec? Shard { get; init; }
    /// <summary>Whether the plan needs a task (chat does not).</summary>
    public bool NeedsTask { get; init; } = true;
}

/// <summary>
/// Every check <c>consort run</c> makes before any work, in one place, so that <c>consort validate</c> makes exactly
/// the same ones: config keys and values, split and limit, the output folder, the dataset and every selected item,
/// model files, capabilities, vocabularies and hyperparameters (read from the files, no weights loaded), and the
/// prompt that suits the models. The result holds what a run needs: task, items, dev data, and each run's definition.
/// </summary>
public sealed class RunPlan
{
    private RunPlan() { }

    /// <summary>The parsed config.</summary>
    public required RunConfig Config { get; init; }
    /// <summary>The task, with the prompt that suits the models (null when the request needs none and the config has none).</summary>
    public EvalTask? Task { get; init; }
    /// <summary>Split evaluated.</summary>
    public required string Split { get; init; }
    /// <summary>Item limit.</summary>
    public int? Limit { get; init; }
    /// <summary>Runs to evaluate, in order.</summary>
    public required IReadOnlyList<RunEntry> Runs { get; init; }
    /// <summary>Output folder (full path).</summary>
    public required string OutDir { get; init; }
    /// <summary>Items the runs evaluate (this shard's, when sharded).</summary>
    public IReadOnlyList<EvalItem> Items { get; init; } = [];
    /// <summary>Items selected before sharding.</summary>
    public int Selected { get; init; }
    /// <summary>Dev data for methods that fit themselves.</summary>
    public IFitData? Dev { get; init; }
    /// <summary>Fingerprint of <see cref="Dev"/> (part of collaboration identities).</summary>
    public string? DevFingerprint { get; init; }
    /// <summary>Items in flight at once.</summary>
    public int Concurrency { get; init; }
    /// <summary>The shard, when sharded.</summary>
    public ShardSpec? Shard { get; init; }
    /// <summary>True when every local model is a base model (no chat template) and so gets the completion prompt.</summary>
    public bool BaseModels { get; init; }
    /// <summary>Each run's definition, by run name.</summary>
    public IReadOnlyDictionary<string, RunDefinition> Definitions { get; init; } = new Dictionary<string, RunDefinition>();
    /// <summary>Models not checked because they are <c>hf:</c> references not downloaded yet (validate only).</summary>
    public IReadOnlyList<string> NotDownloaded { get; init; } = [];

    /// <summary>Makes the plan; with <paramref name="download"/>, missing <c>hf:</c> models are downloaded first.</summary>
    /// <exception cref="ConsortException">The first problem found, as one line.</exception>
    public static async Task<RunPlan> PrepareAsync(RunRequest request, Action<string>? log, bool download, CancellationToken ct)
    {
        var config = RunConfig.Load(request.ConfigPath);
        string file = Path.GetFileName(request.ConfigPath);
        if (request.NeedsTask && config.Task is null) throw new ConfigException($"{file}: 'task' is required for run (a dataset name or path, or an object)");
        var split = request.Split ?? config.Split;
        var limit = request.Limit ?? config.Limit;
        if (split is not null and not ("dev" or "test")) throw new ConfigException($"--split must be dev or test, got '{split}'");
        if (limit is <= 0) throw new ConfigException($"--limit must be a positive number of items, got {limit}");
        if (request.Concurrency is <= 0) throw new ConfigException($"--concurrency must be at least 1, got {request.Concurrency}");
        if (request.Concurrency is { } c) Limits.Check(c, 1, Limits.MaxConcurrency, "--concurrency", "run");
        var runs = config.Runs;
        if (runs.Count == 0 && request.NeedsTask) throw new ConfigException($"{file}: nothing to run: give a 'method' (with 'models'), 'runs', or 'baselines': true");
        if (request.Only.Count > 0)
        {
            var unknown = request.Only.Where(o => runs.All(r => r.Name != o)).ToList();
            if (unknown.Count > 0) throw new ConfigException($"--only: no run named {string.Join(", ", unknown.Select(u => $"'{u}'"))}; runs: {string.Join(", ", runs.Select(r => r.Name))}");
            runs = runs.Where(r => request.Only.Contains(r.Name)).ToList();
        }
        var outDir = OutputPaths.CheckFolder(request.OutDir ?? Path.Combine("runs", config.Name), "--out");

        var notDownloaded = new List<string>();
        var specs = runs.Select(r => r.Model).ToList();
        if (download) await ModelSession.PrepareAsync(specs, log, ct).ConfigureAwait(false);
        else notDownloaded.AddRange(Leaves(specs).OfType<GgufModelSpec>().Where(g => g.Reference.StartsWith("hf:", StringComparison.OrdinalIgnoreCase) && !File.Exists(g.Path)).Select(g => g.Reference).Distinct());

        bool baseModels = AllBaseModels(specs, notDownloaded);
        EvalTask? task = null;
        IReadOnlyList<EvalItem> items = [];
        int selected = 0;
        IFitData? dev = null;
        string? devFingerprint = null;
        var definitions = new Dictionary<string, RunDefinition>();
        if (config.Task is not null)
        {
            task = EvalTask.Create(DatasetSearch.Normalize(config.Task), DatasetSearch.Folders(config.BaseDirectory), config.Seed).ForModels(baseModels);
            split ??= task.DefaultSplit;
            var all = task.GetItems(split, limit); // checks every selected item
            selected = all.Count;
            items = request.Shard is { } shard ? shard.Take(all) : all;
            if (task.Dataset.SplitNames.Contains("dev"))
            {
                dev = task.BuildFitData("dev");
                devFingerprint = RunDefinition.HashJson(new JsonArray(dev.Examples.Select(e => (JsonNode)new JsonObject
                {
                    ["id"] = e.Id, ["gold"] = e.Gold,
                    ["messages"] = new JsonArray(e.Messages.Select(m => (JsonNode)JsonValue.Create($"{m.Role}: {m.Text}")!).ToArray()),
                }).ToArray()));
            }
            foreach (var r in runs) definitions[r.Name] = Define(r, task, split, config.Seed);
        }

        // Models: files, capabilities, vocabularies and every hyperparameter value, without loading weights (methods
        // that fit on dev data are told whether the task has a dev split).
        using (var check = new ModelSession { BaseDirectory = config.BaseDirectory, Seed = config.Seed, Dev = dev, Services = HostServices.Default })
            foreach (var r in runs)
                if (!Leaves([r.Model]).OfType<GgufModelSpec>().Any(g => notDownloaded.Contains(g.Reference)))
                    check.Describe(r.Model);
        return new RunPlan
        {
            Config = config, Task = task, Split = split ?? "test", Limit = limit, Runs = runs, OutDir = outDir, Items = items, Selected = selected,
            Dev = dev, DevFingerprint = devFingerprint, Concurrency = request.Concurrency ?? config.Concurrency, Shard = request.Shard,
            BaseModels = baseModels, Definitions = definitions, NotDownloaded = notDownloaded,
        };
    }

    /// <summary>A session that builds the plan's models, each with its identity, the call cache (when given) and telemetry.</summary>
    public ModelSession CreateSession(IDistributedCache? cache, Action<string>? log)
    {
        var decorator = new ModelDecorator { Cache = cache, Seed = Config.Seed, DevFingerprint = DevFingerprint };
        return new ModelSession
        {
            BaseDirectory = Config.BaseDirectory, Dev = Dev, Seed = Config.Seed, MaxConcurrency = Concurrency, Log = log,
            Decorate = decorator.Decorate, Answers = Task?.Answers ?? AnswerExtractor.Generic, Services = HostServices.Default,
        };
    }

    /// <summary>The definition of one run: what decides its results.</summary>
    public static RunDefinition Define(RunEntry run, EvalTask task, string split, int seed)
    {
        var spec = run.Model;
        var parts = new List<KeyValuePair<string, JsonNode?>>
        {
            new("method", spec is CollaborationSpec c ? Consort.Methods.MethodRegistry.Find(c.Method)?.Metadata.Name ?? c.Method : "single_model"),
            new("options", spec is CollaborationSpec c2 ? c2.Hyperparameters.DeepClone() : new JsonObject()),
            new("models", spec is CollaborationSpec c3
                ? new JsonArray(c3.Members.Select(m => (JsonNode)ModelIdentity.Tree(m)).ToArray())
                : ModelIdentity.Tree(spec)),
            new("split", split),
            new("seed", seed),
        };
        parts.AddRange(task.DefinitionParts());
        return RunDefinition.Of(parts);
    }

    /// <summary>Every leaf model (members of collaborations, recursively).</summary>
    public static IEnumerable<ModelSpec> Leaves(IEnumerable<ModelSpec> specs) =>
        specs.SelectMany(s => s is CollaborationSpec c ? Leaves(c.Members) : [s]);

    // Base models have no chat template: they continue text rather than follow instructions. Endpoints speak chat.
    internal static bool AllBaseModels(IEnumerable<ModelSpec> specs, IReadOnlyCollection<string> notDownloaded)
    {
        var leaves = Leaves(specs).ToList();
        if (leaves.Count == 0) return false;
        foreach (var leaf in leaves)
        {
            if (leaf is not GgufModelSpec g) return false;
            if (notDownloaded.Contains(g.Reference)) continue;
            using var f = GgufFile.Open(g.Path);
            if (f.GetString("tokenizer.chat_template") is { Length: > 0 }) return false;
        }
        return true;
    }
}
