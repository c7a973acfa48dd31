using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Consort.Gateway;

/// <summary>
/// The gateway's instruments on the Meter <c>Consort.Gateway</c>: attempts per deployment by outcome, cooldowns,
/// deployments cooling now, fallbacks taken, and failed or resumed streams. The server exports this meter at /metrics.
/// </summary>
public static class GatewayMetrics
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = "Consort.Gateway";

    private static readonly Meter Meter = new(MeterName);
    private static readonly Counter<long> Attempts = Meter.CreateCounter<long>("consort_gateway_attempts", description: "Calls to a deployment by outcome (ok or the failure kind).");
    private static readonly Counter<long> Cooldowns = Meter.CreateCounter<long>("consort_gateway_cooldowns", description: "Times a deployment was put in cooldown.");
    private static readonly Counter<long> Fallbacks = Meter.CreateCounter<long>("consort_gateway_fallbacks", description: "Calls that fell back to another model, by reason.");
    private static readonly Counter<long> StreamFailures = Meter.CreateCounter<long>("consort_gateway_stream_failures", description: "Upstream streams that failed part-way (stall, cut or error).");
    private static readonly Counter<long> Resumes = Meter.CreateCounter<long>("consort_gateway_stream_resumes", description: "Streams continued on another deployment or model after a failure.");
    private static readonly ConcurrentDictionary<DeploymentPool, byte> Pools = new();

    static GatewayMetrics()
    {
        Meter.CreateObservableGauge("consort_gateway_deployment_cooling", () =>
            Pools.Keys.SelectMany(p => p.Deployments.Select((d, i) => new Measurement<int>(p.IsCooling(i) ? 1 : 0, Tags(p.Model, d.Name)))),
            description: "1 while a deployment is in cooldown.");
        Meter.CreateObservableGauge("consort_gateway_deployment_in_flight", () =>
            Pools.Keys.SelectMany(p => p.Deployments.Select((d, i) => new Measurement<int>(p.InFlight(i), Tags(p.Model, d.Name)))),
            description: "Calls in flight per deployment.");
    }

    internal static void Register(DeploymentPool pool) => Pools.TryAdd(pool, 0);

    internal static void Attempt(DeploymentPool p, int i, string outcome) =>
        Attempts.Add(1, new("model", p.Model), new("deployment", p.Deployments[i].Name), new("outcome", outcome));

    internal static void Cooldown(DeploymentPool p, int i) => Cooldowns.Add(1, new("model", p.Model), new("deployment", p.Deployments[i].Name));

    internal static void Fallback(string model, string fallback, string reason) =>
        Fallbacks.Add(1, new("model", model), new("fallback", fallback), new("reason", reason));

    internal static void StreamFailure(string model, string source, string kind) =>
        StreamFailures.Add(1, new("model", model), new("source", source), new("kind", kind));

    internal static void Resume(string model) => Resumes.Add(1, new KeyValuePair<string, object?>("model", model));

    private static KeyValuePair<string, object?>[] Tags(string model, string deployment) => [new("model", model), new("deployment", deployment)];
}
