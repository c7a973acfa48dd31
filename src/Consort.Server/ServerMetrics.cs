using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Consort.Server;

/// <summary>
/// The server's instruments on the Meter <c>Consort.Server</c>, exported at /metrics in Prometheus format: requests by
/// model, endpoint and status, latency and queue-wait histograms, tokens and cost by model, rejections by reason,
/// usage per key (by the key's name, never the key), queue depth, requests in flight and whether Redis answers.
/// </summary>
public static class ServerMetrics
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = "Consort.Server";
    /// <summary>Core meter of inner calls (added by the evaluation layer; exported when present).</summary>
    public const string CoreMeterName = "Consort";

    private static readonly Meter Meter = new(MeterName);
    private static readonly Counter<long> Requests = Meter.CreateCounter<long>("consort_server_requests", description: "Requests answered, by model, endpoint and HTTP status.");
    // Seconds, from a fast cached answer to a long generation (the SDK's default buckets are for milliseconds).
    private static readonly InstrumentAdvice<double> SecondsBuckets = new() { HistogramBucketBoundaries = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300] };
    private static readonly Histogram<double> Duration = Meter.CreateHistogram("consort_server_request_duration", "s", "Time from arrival to the end of the answer.", advice: SecondsBuckets);
    private static readonly Histogram<double> QueueWait = Meter.CreateHistogram("consort_server_queue_wait", "s", "Time a request waited for a slot.", advice: SecondsBuckets);
    private static readonly Counter<long> Tokens = Meter.CreateCounter<long>("consort_server_tokens", description: "Tokens of answered requests, by model and kind (prompt, completion).");
    private static readonly Counter<double> Cost = Meter.CreateCounter<double>("consort_server_cost", description: "Cost of answered requests, by model (in the models' price unit).");
    private static readonly Counter<long> Rejected = Meter.CreateCounter<long>("consort_server_rejected", description: "Requests refused before they ran, by reason.");
    private static readonly Counter<long> KeyRequests = Meter.CreateCounter<long>("consort_key_requests", description: "Requests per API key (by the key's name).");
    private static readonly Counter<long> KeyTokens = Meter.CreateCounter<long>("consort_key_tokens", description: "Tokens per API key (by the key's name).");
    private static readonly Counter<double> KeyCost = Meter.CreateCounter<double>("consort_key_cost", description: "Cost per API key (by the key's name).");
    private static readonly Counter<long> KeyRejections = Meter.CreateCounter<long>("consort_key_rejected", description: "Requests of a key refused by its limits, by limit.");
    private static readonly ConcurrentDictionary<ServerState, byte> Servers = new();

    static ServerMetrics()
    {
        Meter.CreateObservableGauge("consort_server_queue_depth", () => Servers.Keys.Select(s => new Measurement<int>(s.Gate.Waiting, Instance(s))),
            description: "Requests waiting for a slot.");
        Meter.CreateObservableGauge("consort_server_in_flight", () => Servers.Keys.Select(s => new Measurement<int>(s.Gate.InFlight, Instance(s))),
            description: "Requests being served.");
        Meter.CreateObservableGauge("consort_server_redis_up", () => Servers.Keys.Where(s => s.Redis is not null).Select(s => new Measurement<int>(s.Redis!.Up ? 1 : 0, Instance(s))),
            description: "1 while the configured Redis answers; 0 while the server runs on local state.");
    }

    private static KeyValuePair<string, object?> Instance(ServerState s) => new("instance", s.Instance);

    internal static void Register(ServerState s) => Servers.TryAdd(s, 0);
    internal static void Unregister(ServerState s) => Servers.TryRemove(s, out _);

    internal static void Answered(string? model, string endpoint, int status, TimeSpan duration)
    {
        KeyValuePair<string, object?> m = new("model", model ?? ""), e = new("endpoint", endpoint);
        Requests.Add(1, m, e, new("status", status));
        Duration.Record(duration.TotalSeconds, m, e);
    }

    internal static void Waited(TimeSpan wait) => QueueWait.Record(wait.TotalSeconds);

    internal static void Used(string model, string? key, long prompt, long completion, decimal? cost)
    {
        Tokens.Add(prompt, new("model", model), new("kind", "prompt"));
        Tokens.Add(completion, new("model", model), new("kind", "completion"));
        if (cost is { } c) Cost.Add((double)c, new KeyValuePair<string, object?>("model", model));
        if (key is null) return;
        KeyTokens.Add(prompt + completion, new KeyValuePair<string, object?>("key", key));
        if (cost is { } kc) KeyCost.Add((double)kc, new KeyValuePair<string, object?>("key", key));
    }

    internal static void KeyRequest(string key) => KeyRequests.Add(1, new KeyValuePair<string, object?>("key", key));
    internal static void Refused(string reason) => Rejected.Add(1, new KeyValuePair<string, object?>("reason", reason));
    internal static void KeyRejected(string key, string limit) => KeyRejections.Add(1, new("key", key), new("limit", limit));
}
