using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.AI;

namespace Consort;

/// <summary>Thread-safe counters of the work a model did (tokens in and out, calls, time).</summary>
public sealed class UsageMeter
{
    private long _input, _output, _calls, _ticks;

    /// <summary>Prompt tokens processed.</summary>
    public long InputTokens => Interlocked.Read(ref _input);
    /// <summary>Tokens generated or scored.</summary>
    public long OutputTokens => Interlocked.Read(ref _output);
    /// <summary>Calls made.</summary>
    public long Calls => Interlocked.Read(ref _calls);
    /// <summary>Time spent inside calls.</summary>
    public TimeSpan Elapsed => TimeSpan.FromTicks(Interlocked.Read(ref _ticks));

    /// <summary>Adds one call's work.</summary>
    public void Add(long inputTokens, long outputTokens, TimeSpan elapsed)
    {
        Interlocked.Add(ref _input, inputTokens);
        Interlocked.Add(ref _output, outputTokens);
        Interlocked.Increment(ref _calls);
        Interlocked.Add(ref _ticks, elapsed.Ticks);
    }
}

/// <summary>One inner call of a collaboration: who was asked what, what it said, and what it cost.</summary>
public sealed record TraceEntry
{
    /// <summary>Model name.</summary>
    public required string Model { get; init; }
    /// <summary>What the call was for in the method (e.g. "sample 2", "defer", "judge").</summary>
    public string? Role { get; init; }
    /// <summary>The input (last user message or a summary).</summary>
    public string? Input { get; init; }
    /// <summary>The output text.</summary>
    public string? Output { get; init; }
    /// <summary>Input tokens.</summary>
    public long InputTokens { get; init; }
    /// <summary>Output tokens.</summary>
    public long OutputTokens { get; init; }
    /// <summary>Wall time of the call in milliseconds.</summary>
    public double LatencyMs { get; init; }
    /// <summary>Cost, where the model has prices.</summary>
    public decimal? Cost { get; init; }
    /// <summary>Extra facts (confidence, weight, vote, ...).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public Dictionary<string, object?>? Data { get; init; }
    /// <summary>Inner calls of this call when the member is itself a collaboration.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<TraceEntry>? Children { get; init; }
}

/// <summary>Collects <see cref="TraceEntry"/> items from concurrent inner calls.</summary>
public sealed class CallTrace
{
    private readonly ConcurrentQueue<TraceEntry> _entries = new();

    /// <summary>Adds an entry.</summary>
    public void Add(TraceEntry entry) => _entries.Enqueue(entry);
    /// <summary>The entries in arrival order.</summary>
    public IReadOnlyList<TraceEntry> Entries => _entries.ToArray();
    /// <summary>Total input tokens of all entries (children included through their parents' totals).</summary>
    public long InputTokens => _entries.Sum(e => e.InputTokens);
    /// <summary>Total output tokens.</summary>
    public long OutputTokens => _entries.Sum(e => e.OutputTokens);
    /// <summary>Total cost, or null when no entry has a price.</summary>
    public decimal? Cost => _entries.Any(e => e.Cost is not null) ? _entries.Sum(e => e.Cost ?? 0) : null;

    /// <summary>Usage details totalling every entry.</summary>
    public UsageDetails ToUsage() => new()
    {
        InputTokenCount = InputTokens,
        OutputTokenCount = OutputTokens,
        TotalTokenCount = InputTokens + OutputTokens,
    };
}

/// <summary>Reads and writes the Consort trace and cost that travel with a <see cref="ChatResponse"/>.</summary>
public static class ConsortResponseExtensions
{
    /// <summary>Key of the trace in <see cref="ChatResponse.AdditionalProperties"/>.</summary>
    public const string TraceKey = ConsortKeys.Trace;
    /// <summary>Key of the cost in <see cref="ChatResponse.AdditionalProperties"/>.</summary>
    public const string CostKey = ConsortKeys.Cost;

    // Traces come back from JSON written snake_case (results, the server) or camelCase (MEAI's caches).
    // Numbers may be written as strings or as NaN/Infinity literals (caches keep such values intact).
    private static readonly JsonSerializerOptions Snake = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower, PropertyNameCaseInsensitive = true,
        NumberHandling = JsonNumberHandling.AllowReadingFromString | JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };
    private static readonly JsonSerializerOptions Camel = new(JsonSerializerDefaults.Web)
    {
        NumberHandling = JsonNumberHandling.AllowReadingFromString | JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    private static List<TraceEntry> TraceFromJson(JsonElement e)
    {
        bool snake = e.EnumerateArray().Any(x => x.ValueKind == JsonValueKind.Object && x.EnumerateObject().Any(p => p.Name.Contains('_')));
        return e.Deserialize<List<TraceEntry>>(snake ? Snake : Camel) ?? [];
    }

    /// <summary>The inner calls recorded on the response (empty for a plain model call); also reads a trace that went through JSON.</summary>
    public static IReadOnlyList<TraceEntry> GetTrace(this ChatResponse response) => ReadTrace(response.AdditionalProperties);

    /// <summary>The trace in a property bag (objects, or the JSON form a cache or server gives back).</summary>
    public static IReadOnlyList<TraceEntry> ReadTrace(AdditionalPropertiesDictionary? properties)
    {
        if (properties?.TryGetValue(TraceKey, out var v) != true) return [];
        return v switch
        {
            IReadOnlyList<TraceEntry> t => t,
            JsonElement e when e.ValueKind == JsonValueKind.Array => TraceFromJson(e),
            _ => [],
        };
    }

    /// <summary>The cost recorded on the response, if any (also after JSON).</summary>
    public static decimal? GetCost(this ChatResponse response) =>
        response.AdditionalProperties?.TryGetValue(CostKey, out var v) == true ? v switch
        {
            decimal d => d,
            double x => (decimal)x,
            JsonElement { ValueKind: JsonValueKind.Number } e when e.TryGetDecimal(out var d) => d,
            _ => null,
        } : null;

    /// <summary>The member that answered (routers, cascades), if recorded.</summary>
    public static string? GetAnsweredBy(this ChatResponse response) =>
        response.AdditionalProperties?.TryGetValue(ConsortKeys.AnsweredBy, out var v) == true ? v switch
        {
            string s => s,
            JsonElement { ValueKind: JsonValueKind.String } e => e.GetString(),
            _ => null,
        } : null;

    /// <summary>Attaches a trace and sets usage and cost to its totals.</summary>
    public static ChatResponse WithTrace(this ChatResponse response, CallTrace trace)
    {
        response.AdditionalProperties ??= new();
        response.AdditionalProperties[TraceKey] = trace.Entries;
        if (trace.Cost is { } c) response.AdditionalProperties[CostKey] = c;
        response.Usage = trace.ToUsage();
        return response;
    }

    /// <summary>Makes a trace entry for a finished call to <paramref name="model"/>, nesting the response's own trace.</summary>
    public static TraceEntry ToTraceEntry(this ChatResponse response, ModelDescriptor model, string? role, string? input, TimeSpan latency, Dictionary<string, object?>? data = null)
    {
        long inTok = response.Usage?.InputTokenCount ?? 0, outTok = response.Usage?.OutputTokenCount ?? 0;
        var inner = response.GetTrace();
        return new TraceEntry
        {
            Model = model.Name,
            Role = role,
            Input = input,
            Output = response.Text,
            InputTokens = inTok,
            OutputTokens = outTok,
            LatencyMs = latency.TotalMilliseconds,
            Cost = response.GetCost() ?? model.CostOf(inTok, outTok),
            Data = data,
            Children = inner.Count > 0 ? inner : null,
        };
    }
}

/// <summary>
/// Token log-probabilities that a backend attaches to a chat response, so that API-level methods
/// (cascades, deferral) can read a model's confidence without knowing its backend.
/// </summary>
public static class TokenLogprobExtensions
{
    /// <summary>Key in <see cref="ChatResponse.AdditionalProperties"/>: float[] of the generated tokens' log-probabilities.</summary>
    public const string LogprobsKey = ConsortKeys.Logprobs;
    /// <summary>Key in <see cref="ChatOptions.AdditionalProperties"/>: true asks backends that charge for logprobs to return them.</summary>
    public const string RequestKey = ConsortKeys.Logprobs;

    /// <summary>The generated tokens' log-probabilities, or null when the backend gave none (also reads the JSON form).</summary>
    public static float[]? GetTokenLogprobs(this ChatResponse response) => ReadLogprobs(response.AdditionalProperties);

    /// <summary>Log-probabilities in a property bag (float[], a number list, or a JSON array).</summary>
    public static float[]? ReadLogprobs(AdditionalPropertiesDictionary? properties)
    {
        if (properties?.TryGetValue(LogprobsKey, out var v) != true) return null;
        return v switch
        {
            float[] f => f,
            IEnumerable<double> d => d.Select(x => (float)x).ToArray(),
            JsonElement e when e.ValueKind == JsonValueKind.Array => e.EnumerateArray().Select(x => x.GetSingle()).ToArray(),
            _ => null,
        };
    }

    /// <summary>Attaches per-token log-probabilities.</summary>
    public static ChatResponse WithTokenLogprobs(this ChatResponse response, float[] logprobs)
    {
        response.AdditionalProperties ??= new();
        response.AdditionalProperties[LogprobsKey] = logprobs;
        return response;
    }

    /// <summary>Returns options that ask for token log-probabilities (a copy; the input is not changed).</summary>
    public static ChatOptions RequestingLogprobs(this ChatOptions? options)
    {
        var o = options?.Clone() ?? new ChatOptions();
        o.AdditionalProperties ??= new();
        o.AdditionalProperties[RequestKey] = true;
        return o;
    }

    /// <summary>True when the options ask for token log-probabilities.</summary>
    public static bool WantsLogprobs(this ChatOptions? options) =>
        options?.AdditionalProperties?.TryGetValue(RequestKey, out var v) == true && v is true or JsonElement { ValueKind: JsonValueKind.True };
}
