using System.Text.Json;
using System.Text.Json.Nodes;

namespace Consort.Evaluation;

/// <summary>Score of one group of items.</summary>
/// <param name="N">Items.</param>
/// <param name="Score">Mean score.</param>
public sealed record GroupScore(int N, double Score);

/// <summary>Call-cache counts of a run.</summary>
/// <param name="Hits">Calls answered from the cache.</param>
/// <param name="Misses">Deterministic calls computed and stored.</param>
/// <param name="Skipped">Calls not cacheable (sampling without a seed).</param>
public sealed record CacheSummary(long Hits, long Misses, long Skipped);

/// <summary>summary.json: the scores of one model on one task split, computed from results.jsonl.</summary>
public sealed record EvalSummary
{
    /// <summary>File name inside the output folder.</summary>
    public const string FileName = "summary.json";

    /// <summary>Model (or collaboration) name.</summary>
    public required string Model { get; init; }
    /// <summary>Method ("single" for one model).</summary>
    public required string Method { get; init; }
    /// <summary>Member model names.</summary>
    public required IReadOnlyList<string> Models { get; init; }
    /// <summary>Task (dataset) name.</summary>
    public required string Task { get; init; }
    /// <summary>Task type.</summary>
    public required string TaskType { get; init; }
    /// <summary>Scoring mode.</summary>
    public required string Scoring { get; init; }
    /// <summary>Split.</summary>
    public required string Split { get; init; }
    /// <summary>Items with a result.</summary>
    public int N { get; init; }
    /// <summary>Items selected (split after limit).</summary>
    public int Total { get; init; }
    /// <summary>Items left out because they have no gold value (e.g. "output": null).</summary>
    public int Skipped { get; init; }
    /// <summary>Items whose model call failed (scored 0).</summary>
    public int Errors { get; init; }
    /// <summary>The first failed item's message (with the underlying cause: connection refused, timeout, HTTP status), or null.</summary>
    public string? FirstError { get; init; }
    /// <summary>Answered items (no error) whose output held no extractable answer.</summary>
    public int NoAnswer { get; init; }
    /// <summary>One such output (item key and text), for the warning.</summary>
    public string? NoAnswerExample { get; init; }
    /// <summary>Where the prompt came from ("config", "completion", "instruction", "likelihood").</summary>
    public string? PromptStyle { get; init; }
    /// <summary>The shard ("i/n") of this folder, or null for a whole run.</summary>
    public string? Shard { get; init; }
    /// <summary>Digest of the run's definition (<see cref="RunDefinition"/>), when it has one.</summary>
    public string? DefinitionDigest { get; init; }
    /// <summary>Call-cache hits and misses of this invocation, when a cache was used.</summary>
    public CacheSummary? Cache { get; init; }
    /// <summary>For routers and cascades: how many items each member answered (from the responses).</summary>
    public IReadOnlyDictionary<string, int>? AnsweredBy { get; init; }
    /// <summary>Mean score.</summary>
    public double Score { get; init; }
    /// <summary>95% interval of the mean score.</summary>
    public ConfidenceInterval? Ci { get; init; }
    /// <summary>Mean of each further metric (acc_norm, contains, ...).</summary>
    public IReadOnlyDictionary<string, double> Metrics { get; init; } = new Dictionary<string, double>();
    /// <summary>Per-group scores (by domain, country, ... or the task's "group_by"); null when items have no group.</summary>
    public IReadOnlyDictionary<string, GroupScore>? Groups { get; init; }
    /// <summary>Input tokens over all items.</summary>
    public long InputTokens { get; init; }
    /// <summary>Output tokens over all items.</summary>
    public long OutputTokens { get; init; }
    /// <summary>Cost over all items, when priced.</summary>
    public decimal? Cost { get; init; }
    /// <summary>Wall time of this invocation in seconds.</summary>
    public double WallSeconds { get; init; }
    /// <summary>Sum of per-item latencies in seconds (all invocations).</summary>
    public double ItemSeconds { get; init; }
    /// <summary>Items found already done in the folder when this invocation started.</summary>
    public int Resumed { get; init; }
    /// <summary>When this invocation started.</summary>
    public DateTimeOffset Started { get; init; }
    /// <summary>When it finished.</summary>
    public DateTimeOffset Finished { get; init; }
    /// <summary>True when every selected item has a result.</summary>
    public bool Complete => N == Total;
    /// <summary>The output folder.</summary>
    public string? OutputDirectory { get; init; }
    /// <summary>The run config, echoed.</summary>
    public JsonNode? Config { get; init; }

    /// <summary>Summarizes <paramref name="records"/> (only those whose key is in <paramref name="keys"/>, one per key).</summary>
    public static EvalSummary FromRecords(RunManifest manifest, IReadOnlyList<string> keys, IEnumerable<ResultRecord> records,
        DateTimeOffset started, DateTimeOffset finished, int resumed, string? outputDirectory)
    {
        var wanted = new HashSet<string>(keys, StringComparer.Ordinal);
        var byKey = new Dictionary<string, ResultRecord>(StringComparer.Ordinal);
        foreach (var r in records)
        {
            if (wanted.Contains(r.Key)) byKey[r.Key] = r;
        }
        var list = byKey.Values.ToList();
        var scores = list.Select(r => r.Score).ToList();
        var metricNames = list.SelectMany(r => r.Metrics.Keys).Distinct().Order(StringComparer.Ordinal).ToList();
        var metrics = metricNames.ToDictionary(m => m, m => list.Average(r => r.Metrics.TryGetValue(m, out var v) ? v : 0));
        return new EvalSummary
        {
            Model = manifest.Model,
            Method = manifest.Method,
            Models = manifest.Models,
            Task = manifest.Task,
            TaskType = manifest.TaskType,
            Scoring = manifest.Scoring,
            Split = manifest.Split,
            N = list.Count,
            Total = keys.Count,
            Errors = list.Count(r => r.Error is not null),
            FirstError = records.FirstOrDefault(r => r.Error is not null && wanted.Contains(r.Key))?.Error,
            NoAnswer = list.Count(r => r.Error is null && string.IsNullOrWhiteSpace(r.Extracted)),
            NoAnswerExample = list.FirstOrDefault(r => r.Error is null && string.IsNullOrWhiteSpace(r.Extracted)) is { } na
                ? $"item {na.Key}: {(na.Output is { Length: > 0 } o ? System.Text.Json.JsonSerializer.Serialize(o.Length > 120 ? o[..120] + "..." : o) : "(empty output)")}"
                : null,
            PromptStyle = manifest.PromptStyle,
            Shard = manifest.Shard,
            DefinitionDigest = manifest.Definition?["digest"]?.GetValue<string>(),
            AnsweredBy = list.Any(r => r.AnsweredBy is not null)
                ? list.Where(r => r.AnsweredBy is not null).GroupBy(r => r.AnsweredBy!).OrderBy(g => g.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count())
                : null,
            Score = scores.Count == 0 ? 0 : scores.Average(),
            Ci = ScoreStatistics.Interval(scores),
            Metrics = metrics,
            Groups = list.Any(r => r.Group is not null)
                ? list.GroupBy(r => r.Group ?? "(none)").OrderBy(g => g.Key, StringComparer.Ordinal)
                    .ToDictionary(g => g.Key, g => new GroupScore(g.Count(), g.Average(r => r.Score)))
                : null,
            InputTokens = list.Sum(r => r.InputTokens),
            OutputTokens = list.Sum(r => r.OutputTokens),
            Cost = list.Any(r => r.Cost is not null) ? list.Sum(r => r.Cost ?? 0) : null,
            WallSeconds = (finished - started).TotalSeconds,
            ItemSeconds = list.Sum(r => r.LatencyMs) / 1000.0,
            Resumed = resumed,
            Started = started,
            Finished = finished,
            OutputDirectory = outputDirectory,
            Config = manifest.Config?.DeepClone(),
        };
    }

    /// <summary>Writes summary.json into <paramref name="folder"/>.</summary>
    public void Write(string folder)
    {
        var path = Path.Combine(folder, FileName);
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(this, EvalJson.Indented));
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Reads summary.json from <paramref name="folder"/>.</summary>
    public static EvalSummary Read(string folder)
    {
        var path = Path.Combine(folder, FileName);
        try
        {
            return JsonSerializer.Deserialize<EvalSummary>(File.ReadAllText(path), EvalJson.Options) ?? throw new ConsortException($"{path}: empty");
        }
        catch (Exception e) when (e is JsonException or NotSupportedException or InvalidOperationException or FormatException)
        {
            throw new ConsortException($"{path}: not a valid run summary ({Limits.ForMessage(e.Message)})", e);
        }
    }
}
