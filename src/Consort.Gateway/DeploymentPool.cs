using System.Diagnostics;
using Microsoft.Extensions.AI;

namespace Consort.Gateway;

/// <summary>How a model entry with several deployments picks one for a call.</summary>
public enum RoutingStrategy
{
    /// <summary>In turn.</summary>
    RoundRobin,
    /// <summary>The one with the fewest calls in flight.</summary>
    LeastBusy,
    /// <summary>The one with the lowest recent latency (untried ones first).</summary>
    LowestLatency,
    /// <summary>At random, in proportion to the deployments' weights.</summary>
    Weighted,
}

/// <summary>One deployment of a model: an endpoint or a local replica.</summary>
/// <param name="Name">Name in logs and metrics (never a URL with credentials or a key).</param>
/// <param name="Client">Its chat client.</param>
/// <param name="Weight">Share of calls under <see cref="RoutingStrategy.Weighted"/>.</param>
public sealed record Deployment(string Name, IChatClient Client, double Weight = 1);

/// <summary>Settings of a model's deployments and fallbacks (a model entry's gateway keys).</summary>
public sealed record GatewayOptions
{
    /// <summary>How to pick a deployment.</summary>
    public RoutingStrategy Routing { get; init; } = RoutingStrategy.RoundRobin;
    /// <summary>Failures a deployment may have within a minute before it cools down.</summary>
    public int AllowedFails { get; init; } = 1;
    /// <summary>How long a failing deployment is skipped.</summary>
    public TimeSpan Cooldown { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Further attempts on other deployments after the first fails (default: each deployment once).</summary>
    public int? Retries { get; init; }
    /// <summary>Longest wait for the next update of a stream before it counts as stalled (null: no limit).</summary>
    public TimeSpan? StreamStall { get; init; }
    /// <summary>Limit of one attempt (null: the deployment's own).</summary>
    public TimeSpan? AttemptTimeout { get; init; }
    /// <summary>Seed of the weighted choice.</summary>
    public int Seed { get; init; } = 42;
    /// <summary>Messages about cooldowns, retries and fallbacks.</summary>
    public Action<string>? Log { get; init; }
}

/// <summary>
/// A model's deployments with their health: calls in flight, recent latency, failures in the current minute and a
/// cooldown. <see cref="Order"/> ranks them for one call: healthy ones by the routing strategy, cooling ones last
/// (soonest back first), so a call still has somewhere to go when every deployment is cooling.
/// </summary>
public sealed class DeploymentPool
{
    private readonly State[] _states;
    private readonly Random _random;
    private readonly Lock _lock = new();
    private long _turn;

    /// <summary>Creates the pool.</summary>
    public DeploymentPool(string model, IReadOnlyList<Deployment> deployments, GatewayOptions options)
    {
        if (deployments.Count == 0) throw new ArgumentException("a model needs at least one deployment", nameof(deployments));
        Model = model; Deployments = deployments; Options = options;
        _states = [.. deployments.Select(_ => new State())];
        _random = new Random(options.Seed);
        GatewayMetrics.Register(this);
    }

    /// <summary>The model these deploy.</summary>
    public string Model { get; }
    /// <summary>The deployments, in config order.</summary>
    public IReadOnlyList<Deployment> Deployments { get; }
    /// <summary>Settings.</summary>
    public GatewayOptions Options { get; }

    /// <summary>True while deployment <paramref name="i"/> is cooling down.</summary>
    public bool IsCooling(int i) => Volatile.Read(ref _states[i].CooldownUntil) > Stopwatch.GetTimestamp();
    /// <summary>Calls in flight on deployment <paramref name="i"/>.</summary>
    public int InFlight(int i) => Volatile.Read(ref _states[i].InFlight);

    /// <summary>Deployment indexes in the order to try them for one call, without those in <paramref name="exclude"/>.</summary>
    public List<int> Order(IReadOnlySet<int>? exclude = null)
    {
        long now = Stopwatch.GetTimestamp();
        var healthy = new List<int>();
        var cooling = new List<int>();
        for (int i = 0; i < _states.Length; i++)
        {
            if (exclude?.Contains(i) == true) continue;
            (Volatile.Read(ref _states[i].CooldownUntil) > now ? cooling : healthy).Add(i);
        }
        long turn = Interlocked.Increment(ref _turn) - 1;
        // Rotating the start first makes ties (equal load, equal latency) alternate too.
        int n = Math.Max(1, healthy.Count);
        var rotated = healthy.Select((d, k) => (d, k)).OrderBy(x => (x.k - turn % n + n) % n).Select(x => x.d).ToList();
        var ranked = Options.Routing switch
        {
            RoutingStrategy.LeastBusy => rotated.OrderBy(InFlight).ToList(),
            RoutingStrategy.LowestLatency => rotated.OrderBy(i => Volatile.Read(ref _states[i].LatencyMs)).ToList(),
            RoutingStrategy.Weighted => WeightedOrder(healthy),
            _ => rotated,
        };
        ranked.AddRange(cooling.OrderBy(i => Volatile.Read(ref _states[i].CooldownUntil)));
        return ranked;
    }

    private List<int> WeightedOrder(List<int> candidates)
    {
        var left = new List<int>(candidates);
        var order = new List<int>(left.Count);
        lock (_lock)
        {
            while (left.Count > 0)
            {
                double total = left.Sum(i => Math.Max(0, Deployments[i].Weight));
                int pick = left[^1];
                if (total > 0)
                {
                    double r = _random.NextDouble() * total;
                    foreach (var i in left)
                    {
                        r -= Math.Max(0, Deployments[i].Weight);
                        if (r < 0) { pick = i; break; }
                    }
                }
                order.Add(pick);
                left.Remove(pick);
            }
        }
        return order;
    }

    /// <summary>Marks the start of a call on deployment <paramref name="i"/>; dispose the lease when it ends.</summary>
    public Lease Begin(int i)
    {
        Interlocked.Increment(ref _states[i].InFlight);
        return new Lease(this, i);
    }

    /// <summary>Records a success: resets the failure count and updates the latency average.</summary>
    public void Succeeded(int i, TimeSpan latency)
    {
        var s = _states[i];
        lock (s)
        {
            s.Fails = 0;
            s.LatencyMs = s.LatencyMs == 0 ? latency.TotalMilliseconds : 0.7 * s.LatencyMs + 0.3 * latency.TotalMilliseconds;
        }
        GatewayMetrics.Attempt(this, i, "ok");
    }

    /// <summary>Records a failure; past <see cref="GatewayOptions.AllowedFails"/> within a minute the deployment cools down.</summary>
    public void Failed(int i, FailureKind kind, Exception error)
    {
        GatewayMetrics.Attempt(this, i, kind.Name());
        if (kind == FailureKind.BadRequest) return; // the request's fault, not the deployment's
        var s = _states[i];
        long now = Stopwatch.GetTimestamp();
        bool cooled = false;
        lock (s)
        {
            if (Stopwatch.GetElapsedTime(s.WindowStart, now) > TimeSpan.FromMinutes(1)) { s.WindowStart = now; s.Fails = 0; }
            s.Fails++;
            // A rate limit says "not now" outright; other failures get allowed_fails chances.
            if (s.Fails > Options.AllowedFails || kind == FailureKind.RateLimit)
            {
                Volatile.Write(ref s.CooldownUntil, now + (long)(Options.Cooldown.TotalSeconds * Stopwatch.Frequency));
                s.Fails = 0;
                cooled = true;
            }
        }
        if (cooled)
        {
            GatewayMetrics.Cooldown(this, i);
            Options.Log?.Invoke($"model '{Model}': deployment '{Deployments[i].Name}' cools down for {Options.Cooldown.TotalSeconds:0.#} s after {kind.Name()}: {error.Message}");
        }
    }

    /// <summary>A call in flight on one deployment.</summary>
    public readonly struct Lease(DeploymentPool pool, int index) : IDisposable
    {
        /// <summary>Ends the call.</summary>
        public void Dispose() => Interlocked.Decrement(ref pool._states[index].InFlight);
    }

    private sealed class State
    {
        public int InFlight;
        public int Fails;
        public long WindowStart = Stopwatch.GetTimestamp();
        public long CooldownUntil;
        public double LatencyMs;
    }
}
