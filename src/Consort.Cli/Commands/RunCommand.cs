using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Consort.Config;
using Consort.Evaluation;
using Consort.Methods;
using Spectre.Console;

namespace Consort.Cli.Commands;

/// <summary><c>consort run CONFIG</c>: evaluates every run of a config on its task, side by side.</summary>
public sealed class RunCommand : ICliCommand
{
    /// <inheritdoc />
    public Command Build()
    {
        var config = new Argument<string>("config") { Description = "Run config (JSON)." };
        var outDir = new Option<string?>("--out") { Description = "Output folder (default: runs/<config name>). Rerunning into it resumes." };
        var split = new Option<string?>("--split") { Description = "dev or test (default: the config's, else test)." };
        var limit = new Option<int?>("--limit") { Description = "Evaluate only the first N items." };
        var concurrency = new Option<int?>("--concurrency") { Description = "Items evaluated at once (default: the config's, else 4)." };
        var only = new Option<string[]>("--only") { Description = "Evaluate only these runs (by name).", AllowMultipleArgumentsPerToken = true };
        var cmd = new Command("run", "Evaluate a model or collaboration (and baselines) on a task; writes results.jsonl and summary.json per run.")
        {
            config, outDir, split, limit, concurrency, only,
        };
        cmd.SetAction(async (pr, ct) => await RunAsync(pr.GetValue(config)!, pr.GetValue(outDir), pr.GetValue(split), pr.GetValue(limit),
            pr.GetValue(concurrency), pr.GetValue(only) ?? [], ct));
        return cmd;
    }

    private static async Task<int> RunAsync(string configPath, string? outDir, string? split, int? limit, int? concurrency, string[] only, CancellationToken ct)
    {
        var wall = Stopwatch.StartNew();
        var config = RunConfig.Load(configPath);
        if (config.Task is null) throw new ConfigException($"{Path.GetFileName(configPath)}: 'task' is required for run (a dataset name or path, or an object)");
        split ??= config.Split;
        limit ??= config.Limit;
        if (split is not null and not ("dev" or "test")) throw new ConfigException($"--split must be dev or test, got '{split}'");
        if (limit is <= 0) throw new ConfigException($"--limit must be positive, got {limit}");
        var runs = config.Runs;
        if (runs.Count == 0) throw new ConfigException($"{Path.GetFileName(configPath)}: nothing to run: give a 'method' (with 'models'), 'runs', or 'baselines': true");
        if (only.Length > 0)
        {
            var unknown = only.Where(o => runs.All(r => r.Name != o)).ToList();
            if (unknown.Count > 0) throw new ConfigException($"--only: no run named {string.Join(", ", unknown.Select(u => $"'{u}'"))}; runs: {string.Join(", ", runs.Select(r => r.Name))}");
            runs = runs.Where(r => only.Contains(r.Name)).ToList();
        }

        var task = EvalTask.Create(DatasetSearch.Normalize(config.Task), DatasetSearch.Folders(config.BaseDirectory));
        IFitData? dev = task.Dataset.SplitNames.Contains("dev") ? task.BuildFitData("dev") : null;
        outDir = Path.GetFullPath(outDir ?? Path.Combine("runs", config.Name));
        var log = new List<string>();
        void Log(string message) { lock (log) log.Add(message); AnsiConsole.MarkupLine($"[grey]{Markup.Escape(message)}[/]"); }

        await ModelSession.PrepareAsync(runs.Select(r => r.Model), Log, ct);
        using var session = new ModelSession
        {
            BaseDirectory = config.BaseDirectory, Dev = dev, Seed = config.Seed, MaxConcurrency = concurrency ?? config.Concurrency, Log = Log, Answers = task.Answers,
        };
        // Validate every run (files, capabilities, vocabularies, every hyperparameter value) before any model loads.
        foreach (var r in runs) session.Describe(r.Model);

        var summaries = new List<(RunEntry Run, EvalSummary Summary, string? Method)>();
        var items = task.GetItems(split ?? task.DefaultSplit, limit).Count;
        AnsiConsole.MarkupLine($"[bold]{Markup.Escape(config.Name)}[/]: {runs.Count} run(s) on [bold]{Markup.Escape(task.Name)}[/] ({Markup.Escape(split ?? task.DefaultSplit)}, {items} items) -> {Markup.Escape(outDir)}");
        foreach (var run in runs)
        {
            ct.ThrowIfCancellationRequested();
            var model = await session.BuildAsync(run.Model, ct);
            var options = new EvalRunOptions
            {
                OutputDirectory = Path.Combine(outDir, Safe(run.Name)),
                Split = split,
                Limit = limit,
                Concurrency = concurrency ?? config.Concurrency,
                Method = model.Method ?? "single_model",
                Config = config.Raw,
            };
            var summary = await ProgressView.RunAsync(run.Name, items, p => EvalRunner.RunAsync(model, task, options, p, ct));
            summaries.Add((run, summary, model.Method));
        }

        var table = new Table().Border(TableBorder.Rounded).Title($"{task.Name} ({split ?? task.DefaultSplit})");
        foreach (var col in new[] { "model", "method", "score", "95% CI", "n", "tokens in/out", "seconds" }) table.AddColumn(col);
        double best = summaries.Max(s => s.Summary.Score);
        foreach (var (run, s, method) in summaries)
        {
            string score = s.Score.ToString("F3");
            table.AddRow(Markup.Escape(run.Name), Markup.Escape(method ?? "single_model"), s.Score == best ? $"[bold green]{score}[/]" : score,
                s.Ci is { } ci ? $"[[{ci.Low:F3}, {ci.High:F3}]]" : "-", $"{s.N}/{s.Total}", $"{s.InputTokens}/{s.OutputTokens}", s.WallSeconds.ToString("F1"));
        }
        AnsiConsole.Write(table);
        var comparison = new JsonObject
        {
            ["config"] = config.FilePath,
            ["task"] = task.Name,
            ["split"] = split ?? task.DefaultSplit,
            ["runs"] = new JsonArray(summaries.Select(s => (JsonNode)new JsonObject
            {
                ["name"] = s.Run.Name, ["method"] = s.Method ?? "single_model", ["score"] = s.Summary.Score,
                ["ci_low"] = s.Summary.Ci?.Low, ["ci_high"] = s.Summary.Ci?.High, ["n"] = s.Summary.N, ["total"] = s.Summary.Total,
                ["input_tokens"] = s.Summary.InputTokens, ["output_tokens"] = s.Summary.OutputTokens, ["seconds"] = s.Summary.WallSeconds,
                ["folder"] = s.Summary.OutputDirectory,
            }).ToArray()),
            ["wall_seconds"] = wall.Elapsed.TotalSeconds,
            ["log"] = new JsonArray(log.Select(l => (JsonNode)JsonValue.Create(l)!).ToArray()),
        };
        File.WriteAllText(Path.Combine(outDir, "comparison.json"), comparison.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        AnsiConsole.MarkupLine($"[grey]results in {Markup.Escape(outDir)} ({wall.Elapsed.TotalSeconds:F1} s)[/]");
        var incomplete = summaries.Where(s => !s.Summary.Complete).ToList();
        if (incomplete.Count > 0)
        {
            Console.Error.WriteLine($"error: {incomplete.Count} run(s) incomplete: {string.Join(", ", incomplete.Select(s => s.Run.Name))}; rerun the same command to resume");
            return 1;
        }
        return 0;
    }

    /// <summary>A run name as a folder name.</summary>
    public static string Safe(string name) => string.Concat(name.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.' or '+' ? c : '_'));
}

/// <summary>Where dataset names are looked up.</summary>
public static class DatasetSearch
{
    /// <summary>The config's folder (and its datasets/), <c>CONSORT_DATASETS</c> folders, the zoo's datasets, and ../shared/datasets beside the repository.</summary>
    public static IReadOnlyList<string> Folders(string configDirectory)
    {
        var folders = new List<string> { configDirectory, Path.Combine(configDirectory, "datasets") };
        if (Environment.GetEnvironmentVariable("CONSORT_DATASETS") is { Length: > 0 } env) folders.AddRange(env.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));
        try { folders.Add(Path.Combine(Consort.Training.Zoo.Directory(), "datasets")); }
        catch (ConsortException) { } // no zoo: nothing to add
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Consort.slnx")))
            {
                folders.Add(Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared", "datasets")));
                break;
            }
        return folders.Where(Directory.Exists).Distinct().ToList();
    }

    /// <summary>Strips the <c>zoo:</c> prefix from dataset names (the zoo's datasets folder is searched).</summary>
    public static JsonNode? Normalize(JsonNode? task)
    {
        static string Strip(string s) => s.StartsWith("zoo:", StringComparison.OrdinalIgnoreCase) ? s[4..] : s;
        return task switch
        {
            JsonValue v when v.TryGetValue<string>(out var s) => JsonValue.Create(Strip(s)),
            JsonObject o when o["dataset"] is JsonValue dv && dv.TryGetValue<string>(out var ds) => WithDataset(o, Strip(ds)),
            _ => task,
        };
    }

    private static JsonObject WithDataset(JsonObject o, string dataset)
    {
        var copy = (JsonObject)o.DeepClone();
        copy["dataset"] = dataset;
        return copy;
    }
}
