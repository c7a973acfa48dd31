namespace Consort;

/// <summary>
/// Keys Consort puts in <c>AdditionalProperties</c> of chat responses and options, in one place. Values that pass
/// through JSON (a cache, a server) come back as <see cref="System.Text.Json.JsonElement"/>; the accessors in
/// <see cref="ConsortResponseExtensions"/> and <see cref="TokenLogprobExtensions"/> read both forms.
/// </summary>
public static class ConsortKeys
{
    /// <summary>Response: the inner calls (<see cref="TraceEntry"/> list).</summary>
    public const string Trace = "consort.trace";
    /// <summary>Response: the cost (decimal).</summary>
    public const string Cost = "consort.cost";
    /// <summary>Response: float[] of the generated tokens' log-probabilities. Options: true asks for them.</summary>
    public const string Logprobs = "consort.logprobs";
    /// <summary>Response: name of the member whose answer was returned (routers, cascades).</summary>
    public const string AnsweredBy = "consort.answered_by";
    /// <summary>Response: votes the winning answer got.</summary>
    public const string Votes = "consort.votes";
    /// <summary>Response: how many answers voted.</summary>
    public const string Voters = "consort.voters";
    /// <summary>Response: a fused model's own token counts, next to its members' totals.</summary>
    public const string FusedUsage = "consort.fused_usage";
    /// <summary>Response: true when token-level results were computed from top-k data only (approximate).</summary>
    public const string Approximate = "consort.approximate";
    /// <summary>Options: the request's <see cref="AnswerExtractor"/> (request-scoped behaviour, never serialized).</summary>
    public const string AnswerExtractor = "consort.answer_extractor";

    /// <summary>True for option keys that carry in-process objects and must be left out of cache keys and wire requests.</summary>
    public static bool IsRuntimeOnly(string key) => key == AnswerExtractor;
}
