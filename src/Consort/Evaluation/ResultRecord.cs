using System.Text.Json.Nodes;

namespace Consort.Evaluation;

/// <summary>One line of results.jsonl as read back: what summaries need.</summary>
public sealed record ResultRecord
{
    /// <summary>Item key (unique within the split).</summary>
    public required string Key { get; init; }
    /// <summary>Main score (0 for an error).</summary>
    public double Score { get; init; }
    /// <summary>Further metrics.</summary>
    public IReadOnlyDictionary<string, double> Metrics { get; init; } = new Dictionary<string, double>();
    /// <summary>Input tokens.</summary>
    public long InputTokens { get; init; }
    /// <summary>Output tokens.</summary>
    public long OutputTokens { get; init; }
    /// <summary>Cost, when priced.</summary>
    public decimal? Cost { get; init; }
    /// <summary>Latency of the item in milliseconds.</summary>
    public double LatencyMs { get; init; }
    /// <summary>The item's group (domain, country, ...), if any.</summary>
    public string? Group { get; init; }
    /// <summary>Error message when the model call failed.</summary>
    public string? Error { get; init; }
    /// <summary>The answer read out of the output (null or empty: none found).</summary>
    public string? Extracted { get; init; }
    /// <summary>The output text.</summary>
    public string? Output { get; init; }
    /// <summary>The member that answered (routers, cascades), when the method says.</summary>
    public string? AnsweredBy { get; init; }
    /// <summary>The whole line.</summary>
    public required JsonObject Json { get; init; }

    /// <summary>Reads a results line.</summary>
    /// <exception cref="FormatException">No "key".</exception>
    public static ResultRecord FromJson(JsonObject o)
    {
        var key = EvalItem.TextOf(o["key"]) ?? throw new FormatException("no \"key\"");
        var metrics = new Dictionary<string, double>();
        if (o["metrics"] is JsonObject m)
        {
            foreach (var (k, v) in m)
            {
                if (v is JsonValue jv && jv.TryGetValue<double>(out var d)) metrics[k] = d;
            }
        }
        var usage = o["usage"] as JsonObject;
        return new ResultRecord
        {
            Key = key,
            Score = Number(o["score"]),
            Metrics = metrics,
            InputTokens = (long)Number(usage?["input_tokens"]),
            OutputTokens = (long)Number(usage?["output_tokens"]),
            Cost = o["cost"] is JsonValue c && c.TryGetValue<decimal>(out var cost) ? cost : null,
            LatencyMs = Number(o["latency_ms"]),
            Error = EvalItem.TextOf(o["error"]),
            Extracted = EvalItem.TextOf(o["extracted"]),
            Output = EvalItem.TextOf(o["output"]),
            AnsweredBy = EvalItem.TextOf(o["answered_by"]),
            Group = EvalItem.TextOf(o["group"]),
            Json = o,
        };
    }

    private static double Number(JsonNode? n) => n is JsonValue v && v.TryGetValue<double>(out var d) ? d : 0;
}
