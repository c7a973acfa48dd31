using System.Text.Json;
using System.Text.Json.Nodes;

namespace Consort.Evaluation;

/// <summary>
/// The "task" of a run config: a dataset name, or an object with <c>dataset</c>, <c>task_type</c>, <c>prompt</c>,
/// <c>system</c>, <c>scoring</c> ("generate", "likelihood", "likelihood_letter"), <c>max_tokens</c>, <c>stop</c>,
/// <c>temperature</c>, <c>metric</c>, <c>split</c>, <c>limit</c>, <c>group_by</c>.
/// </summary>
public sealed record EvalTaskOptions
{
    /// <summary>Keys a task object may have.</summary>
    public static IReadOnlyList<string> Keys { get; } =
        ["dataset", "task_type", "prompt", "system", "scoring", "max_tokens", "stop", "temperature", "metric", "split", "limit", "group_by"];

    /// <summary>Scoring modes.</summary>
    public static IReadOnlyList<string> ScoringModes { get; } = ["generate", "likelihood", "likelihood_letter"];

    /// <summary>Dataset name or path.</summary>
    public required string Dataset { get; init; }
    /// <summary>Overrides the file's task type.</summary>
    public string? TaskType { get; init; }
    /// <summary>Prompt template (see <see cref="PromptTemplate"/>); null for the task type's default.</summary>
    public string? Prompt { get; init; }
    /// <summary>System prompt, if any.</summary>
    public string? System { get; init; }
    /// <summary>"generate" (default), "likelihood" (score each choice's text) or "likelihood_letter" (score " A", " B"...).</summary>
    public string Scoring { get; init; } = "generate";
    /// <summary>Generation budget; null for the task type's default.</summary>
    public int? MaxTokens { get; init; }
    /// <summary>Stop sequences.</summary>
    public IReadOnlyList<string> Stop { get; init; } = [];
    /// <summary>Sampling temperature; null means 0 (greedy, reproducible).</summary>
    public float? Temperature { get; init; }
    /// <summary>Main metric where the task type offers several (f1_match: f1, contains, exact).</summary>
    public string? Metric { get; init; }
    /// <summary>Default split for the run ("test" when absent).</summary>
    public string? Split { get; init; }
    /// <summary>Default item limit for the run.</summary>
    public int? Limit { get; init; }

    /// <summary>Item field whose value groups the summary (per-domain scores); null tries "domain", "country", "answer_type".</summary>
    public string? GroupBy { get; init; }

    /// <summary>True for the likelihood scoring modes.</summary>
    public bool UsesLikelihood => Scoring.StartsWith("likelihood", StringComparison.Ordinal);

    /// <summary>Reads a task config: a string (dataset name or path) or an object.</summary>
    /// <exception cref="ConfigException">Missing dataset, unknown key, wrong value type.</exception>
    public static EvalTaskOptions Parse(JsonNode? node)
    {
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.String)
            return new EvalTaskOptions { Dataset = v.GetValue<string>() };
        if (node is not JsonObject o)
            throw new ConfigException($"task: expected a dataset name or an object with \"dataset\", got {node?.ToJsonString() ?? "nothing"}");
        foreach (var (key, _) in o)
        {
            if (!Keys.Contains(key)) throw new ConfigException($"task: unknown key '{key}'; valid: {string.Join(", ", Keys)}");
        }
        var dataset = Get<string>(o, "dataset") ?? throw new ConfigException("task: missing \"dataset\" (a dataset name or file)");
        var scoring = Get<string>(o, "scoring") ?? "generate";
        if (!ScoringModes.Contains(scoring))
            throw new ConfigException($"task: unknown scoring '{scoring}'; valid: {string.Join(", ", ScoringModes)}");
        IReadOnlyList<string> stop = o["stop"] switch
        {
            null => [],
            JsonValue s when s.GetValueKind() == JsonValueKind.String => [s.GetValue<string>()],
            _ => Get<string[]>(o, "stop") ?? [],
        };
        var maxTokens = Get<int?>(o, "max_tokens");
        if (maxTokens is { } mt) Limits.Check(mt, 1, Limits.MaxGeneratedTokens, "max_tokens", "task", "no context holds more");
        var limit = Get<int?>(o, "limit");
        if (limit is < 0) throw new ConfigException($"task: limit must be at least 0, got {limit}");
        return new EvalTaskOptions
        {
            Dataset = dataset,
            TaskType = Get<string>(o, "task_type"),
            Prompt = Get<string>(o, "prompt"),
            System = Get<string>(o, "system"),
            Scoring = scoring,
            MaxTokens = maxTokens,
            Stop = stop,
            Temperature = Get<float?>(o, "temperature"),
            Metric = Get<string>(o, "metric"),
            Split = Get<string>(o, "split"),
            Limit = limit,
            GroupBy = Get<string>(o, "group_by"),
        };
    }

    private static T? Get<T>(JsonObject o, string key)
    {
        var node = o[key];
        if (node is null) return default;
        try
        {
            return node.Deserialize<T>();
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            throw new ConfigException($"task: '{key}' has the wrong type ({node.ToJsonString()})", e);
        }
    }
}
