namespace Consort.Caching;

/// <summary>
/// Hits and misses of the call cache, counted for whatever runs inside a <see cref="Scope"/> (an evaluation run, a
/// chat session) as well as in <see cref="Global"/>. Scopes flow with the async context, so concurrent items of one
/// run count into it and a second run beside it keeps its own counts.
/// </summary>
public sealed class CacheCounters
{
    private static readonly AsyncLocal<CacheCounters?> Current = new();
    private long _hits, _misses, _skipped;

    /// <summary>Counts of the whole process.</summary>
    public static CacheCounters Global { get; } = new();

    /// <summary>Calls answered from the cache.</summary>
    public long Hits => Interlocked.Read(ref _hits);
    /// <summary>Deterministic calls not found (then stored).</summary>
    public long Misses => Interlocked.Read(ref _misses);
    /// <summary>Calls not cached because they sample without a seed.</summary>
    public long Skipped => Interlocked.Read(ref _skipped);

    /// <summary>Counts into <paramref name="counters"/> (and the enclosing scopes) until disposed.</summary>
    public static IDisposable Scope(CacheCounters counters)
    {
        var previous = Current.Value;
        // Already counting into it (a run inside its own scope): nothing to add, and no cycle in the chain.
        for (var c = previous; c is not null; c = c._parent)
            if (c == counters) return new Restore(previous);
        counters._parent = previous;
        Current.Value = counters;
        return new Restore(previous);
    }

    private CacheCounters? _parent;

    /// <summary>Adds a hit to these counters only.</summary>
    public void AddHit() => Interlocked.Increment(ref _hits);
    /// <summary>Adds a miss to these counters only.</summary>
    public void AddMiss() => Interlocked.Increment(ref _misses);

    internal static void Hit() => Each(c => Interlocked.Increment(ref c._hits));
    internal static void Miss() => Each(c => Interlocked.Increment(ref c._misses));
    internal static void Skip() => Each(c => Interlocked.Increment(ref c._skipped));

    private static void Each(Action<CacheCounters> add)
    {
        add(Global);
        for (var c = Current.Value; c is not null && c != Global; c = c._parent) add(c);
    }

    private sealed class Restore(CacheCounters? previous) : IDisposable
    {
        public void Dispose() => Current.Value = previous;
    }
}
