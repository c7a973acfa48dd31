using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Caching.StackExchangeRedis;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Consort.Server.State;

/// <summary>
/// State shared across gateway replicas through Redis: counters (<see cref="ICounterStore"/>) and the call cache
/// (<see cref="IDistributedCache"/>). When Redis goes away the server keeps serving on local state (counters restart
/// from zero, the cache from empty), logs it once, shows <c>consort_redis_up 0</c> at /metrics, and goes back to Redis
/// as soon as it answers again (checked at most every <see cref="RetryAfter"/>).
/// </summary>
public sealed class RedisState : ICounterStore, IDisposable
{
    /// <summary>How long the server stays on local state before trying Redis again.</summary>
    public static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(2);

    // INCRBY and set the expiry only on a new key, in one round trip and atomically.
    private const string AddScript = "local v = redis.call('INCRBY', KEYS[1], ARGV[1]) if tonumber(ARGV[2]) > 0 and redis.call('TTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return v";

    private readonly ConnectionMultiplexer _redis;
    private readonly string _prefix;
    private ILogger _log;
    private readonly LocalCounterStore _local = new();
    private readonly MemoryDistributedCache _localCache = new(Options.Create(new MemoryDistributedCacheOptions { SizeLimit = 64L << 20 }));
    private readonly RedisCache _cache;
    private long _downUntil;
    private int _down;

    private RedisState(ConnectionMultiplexer redis, string prefix, ILogger log)
    {
        _redis = redis; _prefix = prefix; _log = log;
        _cache = new RedisCache(Options.Create(new RedisCacheOptions
        {
            InstanceName = prefix + "cache:",
            ConnectionMultiplexerFactory = () => Task.FromResult<IConnectionMultiplexer>(_redis),
        }));
        Cache = new FailSoftCache(this);
    }

    /// <summary>Connects (failing fast with a clear message when Redis does not answer at start).</summary>
    public static RedisState Connect(string connection, string prefix, ILogger log)
    {
        ConfigurationOptions o;
        try { o = ConfigurationOptions.Parse(connection); }
        catch (ArgumentException e) { throw new ConfigException($"server: 'redis' '{connection}' is not a Redis connection string ({e.Message})"); }
        o.AbortOnConnectFail = false; // keep reconnecting in the background after an outage
        o.ConnectTimeout = 2000;
        o.SyncTimeout = 1000;
        o.AsyncTimeout = 1000;
        o.ConnectRetry = 1;
        var mux = ConnectionMultiplexer.Connect(o);
        if (!mux.IsConnected)
        {
            mux.Dispose();
            throw new ConfigException($"server: Redis at '{string.Join(", ", o.EndPoints)}' does not answer; start it or remove 'redis' to keep state in-process");
        }
        return new RedisState(mux, prefix, log);
    }

    /// <summary>Where outages are logged (the server sets its own logger when it adopts a state connected earlier).</summary>
    public ILogger Log { get => _log; set => _log = value ?? throw new ArgumentNullException(nameof(value)); }

    /// <summary>True while Redis answers (or has not failed since the last retry).</summary>
    public bool Up => Volatile.Read(ref _down) == 0;
    /// <inheritdoc />
    public string Where => Up ? "redis" : "local";
    /// <summary>The call cache: Redis, or local memory while Redis is down.</summary>
    public IDistributedCache Cache { get; }

    /// <inheritdoc />
    public async Task<long> AddAsync(string key, long delta, TimeSpan? ttl, CancellationToken cancellationToken = default)
    {
        if (UseRedis())
        {
            try
            {
                var r = await _redis.GetDatabase().ScriptEvaluateAsync(AddScript, [(RedisKey)(_prefix + key)],
                    [delta, ttl is { } t ? (long)t.TotalMilliseconds : 0]).ConfigureAwait(false);
                MarkUp();
                return (long)r;
            }
            catch (Exception e) when (e is RedisException or TimeoutException or ObjectDisposedException) { MarkDown(e); }
        }
        return await _local.AddAsync(key, delta, ttl, cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<long> GetAsync(string key, CancellationToken cancellationToken = default)
    {
        if (UseRedis())
        {
            try
            {
                var v = await _redis.GetDatabase().StringGetAsync(_prefix + key).ConfigureAwait(false);
                MarkUp();
                return v.IsNull ? 0 : (long)v;
            }
            catch (Exception e) when (e is RedisException or TimeoutException or ObjectDisposedException) { MarkDown(e); }
        }
        return await _local.GetAsync(key, cancellationToken).ConfigureAwait(false);
    }

    private bool UseRedis() => Up || Environment.TickCount64 >= Interlocked.Read(ref _downUntil);

    private void MarkDown(Exception e)
    {
        Interlocked.Exchange(ref _downUntil, Environment.TickCount64 + (long)RetryAfter.TotalMilliseconds);
        if (Interlocked.Exchange(ref _down, 1) == 0)
            _log.LogWarning("redis unavailable ({Error}): serving with local state (counters and cache in this process) until it answers again", e.Message);
    }

    private void MarkUp()
    {
        if (Interlocked.Exchange(ref _down, 0) == 1)
            _log.LogWarning("redis answers again: shared state restored (counters kept locally meanwhile are not merged)");
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _cache.Dispose();
        _redis.Dispose();
    }

    // The cache never fails a request: while Redis is down it is local memory.
    private sealed class FailSoftCache(RedisState s) : IDistributedCache
    {
        private async Task<T> Run<T>(Func<IDistributedCache, Task<T>> f)
        {
            if (s.UseRedis())
            {
                try
                {
                    var r = await f(s._cache).ConfigureAwait(false);
                    s.MarkUp();
                    return r;
                }
                catch (Exception e) when (e is RedisException or TimeoutException or ObjectDisposedException) { s.MarkDown(e); }
            }
            return await f(s._localCache).ConfigureAwait(false);
        }

        public byte[]? Get(string key) => GetAsync(key).GetAwaiter().GetResult();
        public Task<byte[]?> GetAsync(string key, CancellationToken token = default) => Run(c => c.GetAsync(key, token));
        public void Set(string key, byte[] value, DistributedCacheEntryOptions options) => SetAsync(key, value, options).GetAwaiter().GetResult();
        public Task SetAsync(string key, byte[] value, DistributedCacheEntryOptions options, CancellationToken token = default) =>
            Run(async c => { await c.SetAsync(key, value, options, token).ConfigureAwait(false); return true; });
        public void Refresh(string key) => RefreshAsync(key).GetAwaiter().GetResult();
        public Task RefreshAsync(string key, CancellationToken token = default) => Run(async c => { await c.RefreshAsync(key, token).ConfigureAwait(false); return true; });
        public void Remove(string key) => RemoveAsync(key).GetAwaiter().GetResult();
        public Task RemoveAsync(string key, CancellationToken token = default) => Run(async c => { await c.RemoveAsync(key, token).ConfigureAwait(false); return true; });
    }
}
