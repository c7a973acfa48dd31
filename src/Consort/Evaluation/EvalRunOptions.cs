using System.Text.Json.Nodes;

namespace Consort.Evaluation;

/// <summary>What to do when a model call fails on one item.</summary>
public enum ItemErrorMode
{
    /// <summary>Record an error line (score 0, the message) and go on.</summary>
    Record,
    /// <summary>Stop the run (the items already written stay).</summary>
    Abort,
}

/// <summary>Options of one evaluation run.</summary>
public sealed record EvalRunOptions
{
    /// <summary>Output folder (results.jsonl, summary.json, run.json).</summary>
    public required string OutputDirectory { get; init; }
    /// <summary>Split; null for the task's default ("test").</summary>
    public string? Split { get; init; }
    /// <summary>First N items; null for the task's limit or all.</summary>
    public int? Limit { get; init; }
    /// <summary>Items in flight at once.</summary>
    public int Concurrency { get; init; } = 4;
    /// <summary>Failed model calls: record and go on (default) or abort.</summary>
    public ItemErrorMode OnError { get; init; } = ItemErrorMode.Record;
    /// <summary>On resume, run again the items that recorded an error (their lines are replaced).</summary>
    public bool RetryErrors { get; init; } = true;
    /// <summary>Longest time one item may take; a slower item is cancelled and recorded as an error. Null: no limit.</summary>
    public TimeSpan? ItemTimeout { get; init; }
    /// <summary>Method name for results; null takes <see cref="ConsortModel.Method"/> or "single".</summary>
    public string? Method { get; init; }
    /// <summary>The run config, echoed into run.json and summary.json.</summary>
    public JsonNode? Config { get; init; }
    /// <summary>Everything that determines the results; a folder holding results of another definition is refused
    /// (naming what changed) unless <see cref="Fresh"/>. Null: only model, method, task, split and members are compared.</summary>
    public RunDefinition? Definition { get; init; }
    /// <summary>Delete the folder's earlier results first instead of resuming.</summary>
    public bool Fresh { get; init; }
    /// <summary>Evaluate only this shard of the selected items.</summary>
    public ShardSpec? Shard { get; init; }
    /// <summary>Cache counters of this run (reported in summary.json); null counts into a fresh set.</summary>
    public Consort.Caching.CacheCounters? Cache { get; init; }
}

/// <summary>Progress of a run.</summary>
/// <param name="Done">Items with a result (resumed ones included).</param>
/// <param name="Total">Items selected.</param>
/// <param name="Score">Mean score so far.</param>
/// <param name="Errors">Items that failed so far.</param>
/// <param name="Resumed">Items found already done.</param>
/// <param name="LastKey">Key of the item that just finished (null for the first report).</param>
public sealed record EvalProgress(int Done, int Total, double Score, int Errors, int Resumed, string? LastKey);
