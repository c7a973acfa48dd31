using System.Collections.Concurrent;

namespace Consort.Server.State;

/// <summary>
/// Counters the server's limits live in (requests and tokens per minute, budgets, totals per key): in-process by
/// default, in Redis when configured so that several gateway replicas enforce one limit.
/// </summary>
public interface ICounterStore
{
    /// <summary>Adds <paramref name="delta"/> to <paramref name="key"/> and returns the new value; a new key expires after <paramref name="ttl"/> (null: never).</summary>
    Task<long> AddAsync(string key, long delta, TimeSpan? ttl, CancellationToken cancellationToken = default);
    /// <summary>The counter's value (0 when absent).</summary>
    Task<long> GetAsync(string key, CancellationToken cancellationToken = default);
    /// <summary>Where the counters live now: "local" or "redis".</summary>
    string Where { get; }
}

/// <summary>Counters in this process. Expired counters are dropped as new ones arrive.</summary>
public sealed class LocalCounterStore : ICounterStore
{
    private readonly ConcurrentDictionary<string, Entry> _counters = new(StringComparer.Ordinal);
    private long _nextSweep;

    /// <inheritdoc />
    public string Where => "local";

    /// <inheritdoc />
    public Task<long> AddAsync(string key, long delta, TimeSpan? ttl, CancellationToken cancellationToken = default)
    {
        long now = Environment.TickCount64;
        Sweep(now);
        while (true)
        {
            var e = _counters.GetOrAdd(key, _ => new Entry(ttl is { } t ? now + (long)t.TotalMilliseconds : long.MaxValue));
            if (e.Expires <= now) { _counters.TryRemove(new KeyValuePair<string, Entry>(key, e)); continue; }
            return Task.FromResult(Interlocked.Add(ref e.Value, delta));
        }
    }

    /// <inheritdoc />
    public Task<long> GetAsync(string key, CancellationToken cancellationToken = default) =>
        Task.FromResult(_counters.TryGetValue(key, out var e) && e.Expires > Environment.TickCount64 ? Interlocked.Read(ref e.Value) : 0);

    private void Sweep(long now)
    {
        long next = Interlocked.Read(ref _nextSweep);
        if (now < next || Interlocked.CompareExchange(ref _nextSweep, now + 10_000, next) != next) return;
        foreach (var (k, e) in _counters)
            if (e.Expires <= now) _counters.TryRemove(new KeyValuePair<string, Entry>(k, e));
    }

    private sealed class Entry(long expires)
    {
        public readonly long Expires = expires;
        public long Value;
    }
}
