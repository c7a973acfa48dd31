using System.CommandLine;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Consort.Caching;
using Consort.Config;
using Consort.Evaluation;
using Consort.Cli.Reports;
using Spectre.Console;

namespace Consort.Cli.Commands;

/// <summary><c>consort run CONFIG</c>: evaluates every run of a config on its task, side by side.</summary>
public sealed class RunCommand : ICliCommand
{
    /// <inheritdoc />
    public Command Build()
    {
        var config = new Argument<string?>("config") { Description = "Run config (JSON).", Arity = ArgumentArity.ZeroOrOne };
        var outDir = new Option<string?>("--out") { Description = "Output folder (default: runs/<config name>). Rerunning into it resumes when the run's definition is unchanged." };
        var split = new Option<string?>("--split") { Description = "dev or test (default: the config's, else test)." };
        var limit = new Option<int?>("--limit") { Description = "Evaluate a seeded random sample of N items (stratified by the items' domain when they have one; a larger N contains a smaller one, so a rerun reuses what matches)." };
        var concurrency = new Option<int?>("--concurrency") { Description = "Items evaluated at once (default: the config's, else 4)." };
        var only = new Option<string[]>("--only") { Description = "Evaluate only these runs (by name).", AllowMultipleArgumentsPerToken = true };
        var fresh = new Option<bool>("--fresh") { Description = "Delete the output folder's earlier results of these runs and start over." };
        var allowErrors = new Option<bool>("--allow-errors") { Description = "Exit 0 even when items failed (they are counted and shown either way)." };
        var noCache = new Option<bool>("--no-cache") { Description = "Do not read or write the call cache (CONSORT_CACHE/calls.sqlite)." };
        var noReport = new Option<bool>("--no-report") { Description = "Do not write report.html / report.md at the end." };
        var shard = new Option<string?>("--shard") { Description = "Evaluate shard i of n (i/n) of the items; run the others elsewhere and join them with --merge-shards." };
        var merge = new Option<string[]>("--merge-shards") { Description = "Join the output folders of shard runs (DIR...) into --out: one summary as if unsharded.", AllowMultipleArgumentsPerToken = true };
        var otlp = new Option<string?>("--otlp") { Description = "Export spans and metrics over OTLP to this endpoint (e.g. http://127.0.0.1:4318; also OTEL_EXPORTER_OTLP_ENDPOINT)." };
        var cmd = new Command("run", "Evaluate a model or collaboration (and baselines) on a task; writes results.jsonl and summary.json per run, comparison.json and a report.")
        {
            config, outDir, split, limit, concurrency, only, fresh, allowErrors, noCache, noReport, shard, merge, otlp,
        };
        cmd.SetAction(async (pr, ct) =>
        {
            using var telemetry = TelemetrySetup.Start(pr.GetValue(otlp), "consort run");
            var flags = new RunFlags(pr.GetValue(fresh), pr.GetValue(allowErrors), pr.GetValue(noCache), pr.GetValue(noReport));
            if (pr.GetValue(merge) is { Length: > 0 } dirs)
            {
                if (pr.GetValue(config) is not null) throw new ConfigException("--merge-shards joins finished shard folders; give no config with it");
                return MergeShards(dirs, pr.GetValue(outDir) ?? throw new ConfigException("--merge-shards needs --out (the folder for the joined runs)"), flags);
            }
            var request = new RunRequest
            {
                ConfigPath = pr.GetValue(config) ?? throw new ConfigException("run needs a config file: consort run CONFIG.json (or --merge-shards DIR...)"),
                OutDir = pr.GetValue(outDir), Split = pr.GetValue(split), Limit = pr.GetValue(limit), Concurrency = pr.GetValue(concurrency),
                Only = pr.GetValue(only) ?? [], Shard = pr.GetValue(shard) is { } s ? ShardSpec.Parse(s) : null,
            };
            return await RunAsync(request, flags, ct);
        });
        return cmd;
    }

    private sealed record RunFlags(bool Fresh, bool AllowErrors, bool NoCache, bool NoReport);

    private static async Task<int> RunAsync(RunRequest request, RunFlags flags, CancellationToken ct)
    {
        var wall = Stopwatch.StartNew();
        var log = new List<string>();
        void Log(string message) { lock (log) log.Add(message); AnsiConsole.MarkupLine($"[grey]{Markup.Escape(message)}[/]"); }

        var plan = await RunPlan.PrepareAsync(request, Log, download: true, ct);
        var task = plan.Task!;
        using var cache = flags.NoCache ? null : SqliteDistributedCache.OpenConfigured();
        using var session = plan.CreateSession(cache, Log);

        string shardText = plan.Shard is { } sh ? $", shard {sh} ({plan.Items.Count} of {plan.Selected})" : "";
        AnsiConsole.MarkupLine($"[bold]{Markup.Escape(plan.Config.Name)}[/]: {plan.Runs.Count} run(s) on [bold]{Markup.Escape(task.Name)}[/] " +
                               $"({Markup.Escape(plan.Split)}, {plan.Selected} items{Markup.Escape(shardText)}; prompt: {task.PromptStyle}) -> {Markup.Escape(plan.OutDir)}");
        var summaries = new List<(string Name, EvalSummary Summary)>();
        var failed = new List<(string Name, string Why)>();
        var built = new List<ConsortModel>();
        foreach (var run in plan.Runs)
        {
            ct.ThrowIfCancellationRequested();
            var counters = new CacheCounters();
            using var scope = CacheCounters.Scope(counters);
            ConsortModel model;
            try
            {
                model = await session.BuildAsync(run.Model, ct);
            }
            catch (ConsortException e)
            {
                // A model that fails to load (e.g. llama.cpp crashed on it in the first-load probe) fails its run only;
                // nothing of that run is written (its results files are created with its first item).
                Console.Error.WriteLine($"error: run '{run.Name}' failed: {CliRunner.OneLine(e.Message)}");
                failed.Add((run.Name, e.Message));
                continue;
            }
            built.Add(model);
            var options = new EvalRunOptions
            {
                OutputDirectory = Path.Combine(plan.OutDir, Safe(run.Name)),
                Split = plan.Split,
                Limit = plan.Limit,
                Concurrency = plan.Concurrency,
                Method = model.Method ?? "single_model",
                Config = plan.Config.Raw,
                Definition = plan.Definitions[run.Name],
                Fresh = flags.Fresh,
                Shard = plan.Shard,
                Cache = counters,
            };
            var summary = await ProgressView.RunAsync(run.Name, plan.Items.Count, p => EvalRunner.RunAsync(model, task, options, p, ct));
            summaries.Add((run.Name, summary));
        }
        if (summaries.Count == 0)
        {
            Console.Error.WriteLine($"error: no run could start ({failed.Count} failed: {string.Join(", ", failed.Select(f => f.Name))})");
            return ExitCodes.Error;
        }
        // Router runs with their members' baselines: the quality-cost curve from the outputs already written.
        var runFolders = plan.Runs.ToDictionary(r => r.Name, r => Path.Combine(plan.OutDir, Safe(r.Name)));
        foreach (var table in Consort.Evaluation.Routing.RoutingReport.AttachToRuns(runFolders))
            AnsiConsole.WriteLine(table);
        // Hyperparameter sweeps ("sweep": {"gamma": [...]}): one curve per sweep, its ends the members alone.
        foreach (var table in Consort.Evaluation.Routing.SweepReport.AttachToRuns(plan.Config.Sweeps, runFolders))
            AnsiConsole.WriteLine(table);
        // KV cache and batching counters of the llama.cpp models the runs used.
        var local = LocalModelReport.Collect(built);
        foreach (var m in local) AnsiConsole.MarkupLine($"[grey]{Markup.Escape(LocalModelReport.Line(m))}[/]");
        int code = Finish(plan.Config.FilePath, task.Name, plan.Split, plan.OutDir, summaries, log, wall.Elapsed, flags, failed, LocalModelReport.Json(local));
        if (failed.Count == 0) return code;
        Console.Error.WriteLine($"error: {failed.Count} run(s) failed: {string.Join(", ", failed.Select(f => f.Name))}");
        return ExitCodes.Error;
    }

    /// <summary>Prints the table, writes comparison.json and the report, warns, and picks the exit code.</summary>
    private static int Finish(string? configPath, string taskName, string split, string outDir, IReadOnlyList<(string Name, EvalSummary Summary)> summaries,
        IReadOnlyList<string> log, TimeSpan wall, RunFlags flags, IReadOnlyList<(string Name, string Why)>? failedRuns = null, JsonObject? localModels = null)
    {
        AnsiConsole.Write(ResultTable(taskName, split, summaries));
        Directory.CreateDirectory(outDir);
        var comparison = ComparisonJson.Build(configPath, taskName, split, summaries, wall, log);
        if (failedRuns is { Count: > 0 })
            comparison["failed"] = new JsonArray(failedRuns.Select(f => (JsonNode)new JsonObject { ["name"] = f.Name, ["error"] = f.Why }).ToArray());
        if (localModels is { Count: > 0 }) comparison["local_models"] = localModels;
        OutputPaths.WriteAtomically(Path.Combine(outDir, "comparison.json"), comparison.ToJsonString(EvalJson.Indented));
        if (!flags.NoReport)
        {
            try
            {
                var written = ReportWriter.Write(outDir);
                AnsiConsole.MarkupLine($"[grey]report: {Markup.Escape(written.Html)}[/]");
            }
            catch (Exception e) when (e is IOException or ConsortException or InvalidOperationException or DllNotFoundException or TypeInitializationException)
            {
                Console.Error.WriteLine($"warning: the report could not be written ({e.Message}); the results are complete; try `consort report {outDir}`");
            }
        }
        AnsiConsole.MarkupLine($"[grey]results in {Markup.Escape(outDir)} ({wall.TotalSeconds:F1} s)[/]");

        foreach (var (name, s) in summaries)
        {
            int answered = s.N - s.Errors;
            if (answered > 0 && s.NoAnswer * 2 > answered)
                Console.Error.WriteLine($"warning: run '{name}': {s.NoAnswer} of {answered} outputs held no extractable answer (prompt: {s.PromptStyle ?? "?"}); " +
                                        $"e.g. {s.NoAnswerExample}; check the task's \"prompt\" (base models need a completion prompt such as \"{{input}}\") or the model");
        }
        var incomplete = summaries.Where(s => !s.Summary.Complete && s.Summary.Errors == 0).ToList();
        if (incomplete.Count > 0)
        {
            Console.Error.WriteLine($"error: {incomplete.Count} run(s) incomplete: {string.Join(", ", incomplete.Select(s => s.Name))}; rerun the same command to resume");
            return ExitCodes.Error;
        }
        var failed = summaries.Where(s => s.Summary.Errors > 0).ToList();
        if (failed.Count > 0)
        {
            var first = failed[0].Summary.FirstError;
            string text = $"{failed.Sum(f => f.Summary.Errors)} item(s) failed in {string.Join(", ", failed.Select(f => $"'{f.Name}' ({f.Summary.Errors} of {f.Summary.Total})"))}; first: {first}";
            if (flags.AllowErrors)
            {
                Console.Error.WriteLine($"warning: {text} (--allow-errors: exit 0)");
                return ExitCodes.Ok;
            }
            Console.Error.WriteLine($"error: {text}; rerun to retry the failed items, or pass --allow-errors");
            return ExitCodes.ItemErrors;
        }
        return ExitCodes.Ok;
    }

    /// <summary>The printed comparison table: score with its interval, items, errors, a column per domain, tokens, cache, time.</summary>
    public static Table ResultTable(string taskName, string split, IReadOnlyList<(string Name, EvalSummary Summary)> summaries)
    {
        var groups = summaries.SelectMany(s => s.Summary.Groups?.Keys ?? []).Distinct().Order(StringComparer.Ordinal).ToList();
        bool anyCost = summaries.Any(s => s.Summary.Cost is not null);
        bool anyCache = summaries.Any(s => s.Summary.Cache is not null);
        var table = new Table().Border(TableBorder.Rounded).Title(Markup.Escape($"{taskName} ({split})"));
        var cols = new List<string> { "model", "method", "score", "95% CI", "n", "errors" };
        cols.AddRange(groups);
        cols.Add("tokens in/out");
        if (anyCost) cols.Add("cost");
        if (anyCache) cols.Add("cache hit/miss");
        cols.Add("seconds");
        foreach (var c in cols) table.AddColumn(Markup.Escape(c));
        double best = summaries.Count == 0 ? 0 : summaries.Max(s => s.Summary.Score);
        foreach (var (name, s) in summaries)
        {
            string score = s.Score.ToString("F3");
            var row = new List<string>
            {
                Markup.Escape(name), Markup.Escape(s.Method),
                s.Score == best && s.N > 0 ? $"[bold green]{score}[/]" : score,
                s.Ci is { } ci ? $"[[{ci.Low:F3}, {ci.High:F3}]]" : "-",
                $"{s.N}/{s.Total}",
                s.Errors > 0 ? $"[red]{s.Errors}[/]" : "0",
            };
            foreach (var g in groups) row.Add(s.Groups?.TryGetValue(g, out var gs) == true ? gs.Score.ToString("F3") : "-");
            row.Add($"{s.InputTokens}/{s.OutputTokens}");
            if (anyCost) row.Add(s.Cost is { } cost ? cost.ToString("0.######") : "-");
            if (anyCache) row.Add(s.Cache is { } cc ? $"{cc.Hits}/{cc.Misses}" : "-");
            row.Add(s.WallSeconds.ToString("F1"));
            table.AddRow(row.ToArray());
        }
        return table;
    }

    /// <summary>Joins shard folders into <paramref name="outDir"/>.</summary>
    private static int MergeShards(IReadOnlyList<string> dirs, string outDir, RunFlags flags)
    {
        var wall = Stopwatch.StartNew();
        outDir = OutputPaths.CheckFolder(outDir, "--out");
        var merged = ShardMerger.Merge(dirs, outDir);
        AnsiConsole.MarkupLine($"[grey]joined {dirs.Count} shard folder(s): {merged.Count} run(s) -> {Markup.Escape(outDir)}[/]");
        var first = merged[0].Summary;
        return Finish(null, first.Task, first.Split, outDir, merged, [$"joined shards: {string.Join(", ", dirs)}"], wall.Elapsed, flags);
    }

    /// <summary>A run name as a folder name.</summary>
    public static string Safe(string name) => string.Concat(name.Select(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.' or '+' ? c : '_'));
}

/// <summary>comparison.json: the runs of one invocation side by side.</summary>
public static class ComparisonJson
{
    /// <summary>Builds the document.</summary>
    public static JsonObject Build(string? configPath, string taskName, string split, IReadOnlyList<(string Name, EvalSummary Summary)> summaries, TimeSpan wall, IReadOnlyList<string> log) => new()
    {
        ["config"] = configPath,
        ["task"] = taskName,
        ["split"] = split,
        ["runs"] = new JsonArray(summaries.Select(x => (JsonNode)Row(x.Name, x.Summary)).ToArray()),
        ["wall_seconds"] = wall.TotalSeconds,
        ["log"] = new JsonArray(log.Select(l => (JsonNode)JsonValue.Create(l)!).ToArray()),
    };

    private static JsonObject Row(string name, EvalSummary s) => new()
    {
        ["name"] = name, ["method"] = s.Method, ["score"] = s.Score,
        ["ci_low"] = s.Ci?.Low, ["ci_high"] = s.Ci?.High, ["n"] = s.N, ["total"] = s.Total,
        ["errors"] = s.Errors, ["first_error"] = s.FirstError, ["no_answer"] = s.NoAnswer, ["prompt"] = s.PromptStyle,
        ["groups"] = s.Groups is null ? null : new JsonObject(s.Groups.Select(g => KeyValuePair.Create(g.Key, (JsonNode?)new JsonObject { ["n"] = g.Value.N, ["score"] = g.Value.Score }))),
        ["input_tokens"] = s.InputTokens, ["output_tokens"] = s.OutputTokens, ["cost"] = s.Cost, ["seconds"] = s.WallSeconds,
        ["cache"] = s.Cache is { } c ? new JsonObject { ["hits"] = c.Hits, ["misses"] = c.Misses, ["skipped"] = c.Skipped } : null,
        ["shard"] = s.Shard,
        ["folder"] = s.OutputDirectory,
    };
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
