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
    /// <summary>Requests served at once; more are answered 429 at once.</summary>
    public int MaxConcurrentRequests { get; init; } = 8;
    /// <summary>Least log level written to the console.</summary>
    public LogLevel MinimumLogLevel { get; init; } = LogLevel.Information;

    /// <summary>Keys accepted by <see cref="FromJson"/>.</summary>
    public static readonly IReadOnlyList<string> JsonKeys =
    [
        "urls", "api_keys_file", "max_body_bytes", "max_tokens", "default_max_tokens", "max_messages", "request_timeout_s",
        "max_concurrent_requests", "log_level",
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
        string? keysFile = Get<string>(server, "api_keys_file");
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
        if (ApiKeysFile is not null && !File.Exists(ApiKeysFile)) throw new ConfigException($"server: keys file '{ApiKeysFile}' not found");
    }

    /// <summary>All keys from the options, the keys file and (if enabled) <c>CONSORT_API_KEYS</c>.</summary>
    public HashSet<string> LoadKeys()
    {
        var keys = new HashSet<string>(ApiKeys.Where(k => !string.IsNullOrWhiteSpace(k)).Select(k => k.Trim()), StringComparer.Ordinal);
        if (ApiKeysFile is not null)
            foreach (var line in File.ReadAllLines(ApiKeysFile))
                if (line.Trim() is { Length: > 0 } l && !l.StartsWith('#')) keys.Add(l);
        if (ReadKeysFromEnvironment && Environment.GetEnvironmentVariable("CONSORT_API_KEYS") is { Length: > 0 } env)
            foreach (var k in env.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)) keys.Add(k);
        return keys;
    }
}
