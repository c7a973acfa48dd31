using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;

namespace Consort.Server;

/// <summary>Settings of a Consort server.</summary>
public sealed class ServerOptions
{
    /// <summary>Listen URLs (semicolon-separated). Loopback by default; port 0 picks a free port.</summary>
    public string Urls { get; init; } = "http://127.0.0.1:8000";
    /// <summary>Accepted bearer keys. Merged with <see cref="ApiKeysFile"/> and the <c>CONSORT_API_KEYS</c> environment variable; none at all = open server (a warning is logged).</summary>
    public IReadOnlyList<string> ApiKeys { get; init; } = [];
    /// <summary>File with one key per line (blank lines and lines starting with # ignored).</summary>
    public string? ApiKeysFile { get; init; }
    /// <summary>Whether to read <c>CONSORT_API_KEYS</c> (comma-separated). Tests switch it off to stay independent of the environment.</summary>
    public bool ReadKeysFromEnvironment { get; init; } = true;
    /// <summary>Largest request body accepted.</summary>
    public long MaxBodyBytes { get; init; } = 1 << 20;
    /// <summary>Largest <c>max_tokens</c> a request may ask for.</summary>
    public int MaxTokens { get; init; } = 2048;
    /// <summary><c>max_tokens</c> for chat requests that give none.</summary>
    public int DefaultMaxTokens { get; init; } = 256;
    /// <summary>Most messages in one chat request.</summary>
    public int MaxMessages { get; init; } = 256;
    /// <summary>Wall-clock limit of one request; inner calls are cancelled when it passes.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(120);
    /// <summary>Requests served at once; more wait in the queue.</summary>
    public int MaxConcurrentRequests { get; init; } = 8;
    /// <summary>Requests that may wait for a slot; beyond it the server answers 429 with Retry-After.</summary>
    public int MaxQueue { get; init; } = 1024;
    /// <summary>Longest wait in the queue before the request is answered 503 with Retry-After.</summary>
    public TimeSpan QueueTimeout { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>Largest <c>n</c> (choices per request).</summary>
    public int MaxChoices { get; init; } = 8;
    /// <summary>On shutdown, how long in-flight requests may finish before they are cancelled (streams get an error event).</summary>
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Redis connection string (e.g. <c>127.0.0.1:6379</c>): rate-limit counters, budgets and the call cache are shared through it. Null: in-process.</summary>
    public string? Redis { get; init; }
    /// <summary>
    /// The call cache of served models: <c>none</c> (default), <c>redis</c> (shared by every replica through
    /// <see cref="Redis"/>; local memory while Redis is down) or <c>sqlite</c> (the file cache <c>consort run</c> uses).
    /// Only deterministic calls (greedy, or seeded) are cached.
    /// </summary>
    public string Cache { get; init; } = "none";
    /// <summary>Prefix of every Redis key the server writes.</summary>
    public string RedisPrefix { get; init; } = "consort:";
    /// <summary>Whether to serve <c>/metrics</c> (Prometheus text format).</summary>
    public bool Metrics { get; init; } = true;
    /// <summary>Names of served models that answer <c>/v1/embeddings</c>.</summary>
    public IReadOnlyList<string> EmbeddingModels { get; init; } = [];
    /// <summary>Extra log provider (tests capture every line through it).</summary>
    public ILoggerProvider? ExtraLogger { get; init; }
    /// <summary>Least log level written to the console.</summary>
    public LogLevel MinimumLogLevel { get; init; } = LogLevel.Information;

    /// <summary>These settings on a free loopback port with one generated key (benchmarks and tests).</summary>
    public ServerOptions ForLoopback(string key, LogLevel logLevel) => new()
    {
        Urls = "http://127.0.0.1:0", ApiKeys = [key], ApiKeysFile = null, ReadKeysFromEnvironment = false,
        MaxBodyBytes = MaxBodyBytes, MaxTokens = MaxTokens, DefaultMaxTokens = DefaultMaxTokens, MaxMessages = MaxMessages,
        RequestTimeout = RequestTimeout, MaxConcurrentRequests = MaxConcurrentRequests, MaxQueue = MaxQueue, QueueTimeout = QueueTimeout,
        MaxChoices = MaxChoices, ShutdownTimeout = ShutdownTimeout, Redis = Redis, RedisPrefix = RedisPrefix, Cache = Cache, Metrics = Metrics,
        EmbeddingModels = EmbeddingModels, MinimumLogLevel = logLevel,
    };

    /// <summary>Keys accepted by <see cref="FromJson"/>.</summary>
    public static readonly IReadOnlyList<string> JsonKeys =
    [
        "urls", "api_keys_file", "max_body_bytes", "max_tokens", "default_max_tokens", "max_messages", "request_timeout_s",
        "max_concurrent_requests", "log_level", "keys_file", "max_queue", "queue_timeout_s", "max_n", "shutdown_timeout_s", "redis", "redis_prefix",
        "metrics", "embedding_models", "cache",
    ];

    /// <summary>
    /// Reads the <c>"server"</c> object of a serve config (null = defaults). Relative <c>api_keys_file</c> paths resolve
    /// against <paramref name="baseDirectory"/>; <paramref name="urlsOverride"/> (from the command line) wins over <c>urls</c>.
    /// Keys themselves are not accepted inline so that configs can be shared: use a keys file or <c>CONSORT_API_KEYS</c>.
    /// </summary>
    public static ServerOptions FromJson(JsonObject? server, string baseDirectory, string? urlsOverride = null)
    {
        server ??= new JsonObject();
        foreach (var (key, _) in server)
            if (!JsonKeys.Contains(key))
                throw new ConfigException($"server: unknown key '{key}'; valid keys: {string.Join(", ", JsonKeys)}");
        var d = new ServerOptions();
        string? keysFile = Get<string>(server, "api_keys_file") ?? Get<string>(server, "keys_file");
        var o = new ServerOptions
        {
            Urls = urlsOverride ?? Get<string>(server, "urls") ?? d.Urls,
            ApiKeysFile = keysFile is null ? null : Path.GetFullPath(keysFile, baseDirectory),
            MaxBodyBytes = Get<long?>(server, "max_body_bytes") ?? d.MaxBodyBytes,
            MaxTokens = Get<int?>(server, "max_tokens") ?? d.MaxTokens,
            DefaultMaxTokens = Get<int?>(server, "default_max_tokens") ?? d.DefaultMaxTokens,
            MaxMessages = Get<int?>(server, "max_messages") ?? d.MaxMessages,
            RequestTimeout = Get<double?>(server, "request_timeout_s") is { } t ? t is > 0 and <= 86400 ? TimeSpan.FromSeconds(t)
                : throw new ConfigException($"server: 'request_timeout_s' is {t}; allowed: a number of seconds in (0, 86400]") : d.RequestTimeout,
            MaxConcurrentRequests = Get<int?>(server, "max_concurrent_requests") ?? d.MaxConcurrentRequests,
            MaxQueue = Get<int?>(server, "max_queue") ?? d.MaxQueue,
            QueueTimeout = Get<double?>(server, "queue_timeout_s") is { } qt ? TimeSpan.FromSeconds(qt) : d.QueueTimeout,
            MaxChoices = Get<int?>(server, "max_n") ?? d.MaxChoices,
            ShutdownTimeout = Get<double?>(server, "shutdown_timeout_s") is { } st ? TimeSpan.FromSeconds(st) : d.ShutdownTimeout,
            Redis = Get<string>(server, "redis"),
            RedisPrefix = Get<string>(server, "redis_prefix") ?? d.RedisPrefix,
            Cache = Get<string>(server, "cache") ?? d.Cache,
            Metrics = Get<bool?>(server, "metrics") ?? d.Metrics,
            EmbeddingModels = Get<string[]>(server, "embedding_models") ?? [],
            MinimumLogLevel = Get<string>(server, "log_level") is { } lvl
                ? Enum.TryParse<LogLevel>(lvl, true, out var l) ? l : throw new ConfigException($"server: 'log_level' '{lvl}' is not one of {string.Join(", ", Enum.GetNames<LogLevel>())}")
                : d.MinimumLogLevel,
        };
        o.Validate();
        return o;
    }

    private static T? Get<T>(JsonObject o, string key)
    {
        if (!o.TryGetPropertyValue(key, out var n) || n is null) return default;
        try { return n.Deserialize<T>(); }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            throw new ConfigException($"server: '{key}' has the wrong type ({n.ToJsonString()})", e);
        }
    }

    /// <summary>Checks ranges.</summary>
    public void Validate()
    {
        // Upper bounds too (Limits): every value here sizes work or memory per request.
        Limits.Check(MaxBodyBytes, 1024, Limits.MaxConfigBytes * 4, "max_body_bytes", "server");
        Limits.Check(MaxTokens, 1, Limits.MaxGeneratedTokens, "max_tokens", "server", "no context holds more");
        Limits.Check(DefaultMaxTokens, 1, Limits.MaxGeneratedTokens, "default_max_tokens", "server", "no context holds more"); // clamped to max_tokens per request
        Limits.Check(MaxMessages, 1, 1 << 16, "max_messages", "server");
        if (!(RequestTimeout > TimeSpan.Zero && RequestTimeout <= TimeSpan.FromDays(1))) throw new ConfigException("server: request_timeout_s must be > 0 and at most 86400 (a day)");
        Limits.Check(MaxConcurrentRequests, 1, Limits.MaxConcurrency, "max_concurrent_requests", "server");
        Limits.Check(MaxQueue, 0, 1 << 16, "max_queue", "server");
        if (!(QueueTimeout > TimeSpan.Zero && QueueTimeout <= TimeSpan.FromDays(1))) throw new ConfigException("server: queue_timeout_s must be > 0 and at most 86400 (a day)");
        if (MaxChoices < 1 || MaxChoices > 128) throw new ConfigException($"server: max_n must be 1..128, got {MaxChoices}");
        if (ShutdownTimeout < TimeSpan.Zero) throw new ConfigException("server: shutdown_timeout_s must be >= 0");
        if (Redis is { } r && string.IsNullOrWhiteSpace(r)) throw new ConfigException("server: 'redis' is empty; give host:port, e.g. \"127.0.0.1:6379\"");
        if (Cache is not ("none" or "redis" or "sqlite"))
            throw new ConfigException($"server: 'cache' '{Cache}' is not one of none, redis, sqlite");
        if (Cache == "redis" && Redis is null) throw new ConfigException("server: 'cache' redis needs 'redis' (host:port)");
        ValidateUrls(Urls);
        if (ApiKeysFile is not null && !File.Exists(ApiKeysFile)) throw new ConfigException($"server: keys file '{ApiKeysFile}' not found");
    }

    /// <summary>Each listen URL must be http(s)://HOST:PORT with a port of 0..65535 and nothing after it.</summary>
    public static void ValidateUrls(string urls)
    {
        var parts = urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length == 0) throw new ConfigException("server: 'urls' is empty; give e.g. http://127.0.0.1:8000");
        foreach (var u in parts)
        {
            // Kestrel's own forms for "every address" are fine; Uri would reject the '*' and '+' hosts.
            string probe = u.Replace("://*", "://0.0.0.0").Replace("://+", "://0.0.0.0");
            if (!Uri.TryCreate(probe, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https") || uri.Host.Length == 0
                || (uri.AbsolutePath.Length > 1) || uri.Query.Length > 0 || !HasPort(probe))
                throw new ConfigException($"server: listen URL '{u}' is not of the form http://HOST:PORT (e.g. http://127.0.0.1:8000; port 0 picks a free one)");
        }

        static bool HasPort(string s)
        {
            int start = s.IndexOf("://", StringComparison.Ordinal) + 3;
            string rest = s[start..].TrimEnd('/');
            int colon = rest.LastIndexOf(':');
            return colon > 0 && colon > rest.LastIndexOf(']') && int.TryParse(rest[(colon + 1)..], out int port) && port is >= 0 and <= 65535;
        }
    }

    /// <summary>All keys from the options, the keys file and (if enabled) <c>CONSORT_API_KEYS</c>.</summary>
    public HashSet<string> LoadKeys()
    {
        var keys = new HashSet<string>(ApiKeys.Where(k => !string.IsNullOrWhiteSpace(k)).Select(k => k.Trim()), StringComparer.Ordinal);
        if (ApiKeysFile is not null && !Keys.ApiKeyRing.IsJsonFile(ApiKeysFile))
            foreach (var line in File.ReadAllLines(ApiKeysFile))
                if (line.Trim() is { Length: > 0 } l && !l.StartsWith('#')) keys.Add(l);
        if (ReadKeysFromEnvironment && Environment.GetEnvironmentVariable("CONSORT_API_KEYS") is { Length: > 0 } env)
            foreach (var k in env.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)) keys.Add(k);
        return keys;
    }
}
