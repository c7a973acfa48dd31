using System.Text.Json;
using System.Text.Json.Nodes;

namespace Consort.OpenAI;

/// <summary>
/// Settings of one OpenAI-compatible endpoint model (OpenAI, vLLM, llama.cpp server, a Consort server).
/// The API key itself never appears here: only the name of the environment variable that holds it.
/// </summary>
public sealed class OpenAIModelOptions
{
    /// <summary>Name used in configs, traces and results.</summary>
    public required string Name { get; init; }
    /// <summary>Base URL including the version segment, e.g. <c>http://127.0.0.1:8080/v1</c>.</summary>
    public required string BaseUrl { get; init; }
    /// <summary>Model id sent to the endpoint.</summary>
    public required string Model { get; init; }
    /// <summary>Environment variable holding the API key; null or unset sends a placeholder key (local servers).</summary>
    public string? ApiKeyEnv { get; init; }
    /// <summary>How many alternatives per position to ask for (k); 0 = text access only.</summary>
    public int TopLogprobs { get; init; } = 5;
    /// <summary>Price per million input tokens.</summary>
    public decimal? InputPricePerMillion { get; init; }
    /// <summary>Price per million output tokens.</summary>
    public decimal? OutputPricePerMillion { get; init; }
    /// <summary>Timeout of one HTTP attempt.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(60);
    /// <summary>Timeout of a whole call including retries; null = <see cref="Timeout"/> × (retries + 1) plus backoff room.</summary>
    public TimeSpan? TotalTimeout { get; init; }
    /// <summary>Retries after the first attempt on 408/429/5xx, connection failures and attempt timeouts.</summary>
    public int MaxRetries { get; init; } = 3;
    /// <summary>Base delay of the exponential backoff (jittered); a Retry-After header overrides it.</summary>
    public TimeSpan BackoffBase { get; init; } = TimeSpan.FromMilliseconds(500);
    /// <summary>Failure ratio within <see cref="BreakerSamplingDuration"/> that opens the circuit breaker.</summary>
    public double BreakerFailureRatio { get; init; } = 0.5;
    /// <summary>Fewest calls within the sampling window before the breaker may open.</summary>
    public int BreakerMinimumThroughput { get; init; } = 10;
    /// <summary>Window over which the failure ratio is measured.</summary>
    public TimeSpan BreakerSamplingDuration { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>How long the breaker stays open before trying again.</summary>
    public TimeSpan BreakerBreakDuration { get; init; } = TimeSpan.FromSeconds(15);
    /// <summary>Context window in tokens (0 = unknown).</summary>
    public int ContextSize { get; init; }
    /// <summary>
    /// Name of the tokenizer the endpoint uses. Endpoint token models with the same name share token ids
    /// (token strings are interned process-wide), so token-level methods may combine them. Default: the model id.
    /// </summary>
    public string? Vocabulary { get; init; }
    /// <summary>Nominal vocabulary size for top-k distributions (ids are interned token strings, so this bounds how many distinct strings one process may see).</summary>
    public int VocabularySize { get; init; } = 65536;

    /// <summary>Keys accepted by <see cref="FromJson"/>.</summary>
    public static readonly IReadOnlyList<string> JsonKeys =
    [
        "name", "type", "base_url", "model", "api_key_env", "top_logprobs", "price_input_per_million", "price_output_per_million",
        "timeout_s", "total_timeout_s", "max_retries", "backoff_base_ms", "breaker_failure_ratio", "breaker_minimum_throughput",
        "breaker_sampling_s", "breaker_break_s", "context_size", "vocabulary", "vocabulary_size",
    ];

    /// <summary>
    /// Reads a config model entry such as
    /// <c>{"name":"x","type":"openai","base_url":"http://127.0.0.1:8080/v1","model":"m","api_key_env":"OPENAI_API_KEY","top_logprobs":5}</c>.
    /// Unknown keys and wrong types are a <see cref="ConfigException"/> naming the model and the key.
    /// </summary>
    public static OpenAIModelOptions FromJson(JsonObject entry, string defaultName)
    {
        ArgumentNullException.ThrowIfNull(entry);
        string name = entry["name"] is JsonValue nv && nv.TryGetValue<string>(out var n) && n.Length > 0 ? n : defaultName;
        foreach (var (key, _) in entry)
            if (!JsonKeys.Contains(key))
                throw new ConfigException($"model '{name}': unknown key '{key}'; valid keys: {string.Join(", ", JsonKeys)}");
        if (entry["type"] is { } typeNode && Get<string>(entry, name, "type") is { } type && type != "openai")
            throw new ConfigException($"model '{name}': type '{type}' is not 'openai'");

        string baseUrl = Get<string>(entry, name, "base_url") ?? throw new ConfigException($"model '{name}': 'base_url' is required (e.g. \"http://127.0.0.1:8080/v1\")");
        if (!Uri.TryCreate(baseUrl, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
            throw new ConfigException($"model '{name}': 'base_url' must be an absolute http(s) URL, got '{baseUrl}'");
        string model = Get<string>(entry, name, "model") ?? throw new ConfigException($"model '{name}': 'model' (the endpoint's model id) is required");

        var o = new OpenAIModelOptions
        {
            Name = name,
            BaseUrl = baseUrl,
            Model = model,
            ApiKeyEnv = Get<string>(entry, name, "api_key_env"),
            TopLogprobs = Get<int?>(entry, name, "top_logprobs") ?? 5,
            InputPricePerMillion = Get<decimal?>(entry, name, "price_input_per_million"),
            OutputPricePerMillion = Get<decimal?>(entry, name, "price_output_per_million"),
            Timeout = TimeSpan.FromSeconds(Get<double?>(entry, name, "timeout_s") ?? 60),
            TotalTimeout = Get<double?>(entry, name, "total_timeout_s") is { } tt ? TimeSpan.FromSeconds(tt) : null,
            MaxRetries = Get<int?>(entry, name, "max_retries") ?? 3,
            BackoffBase = TimeSpan.FromMilliseconds(Get<double?>(entry, name, "backoff_base_ms") ?? 500),
            BreakerFailureRatio = Get<double?>(entry, name, "breaker_failure_ratio") ?? 0.5,
            BreakerMinimumThroughput = Get<int?>(entry, name, "breaker_minimum_throughput") ?? 10,
            BreakerSamplingDuration = TimeSpan.FromSeconds(Get<double?>(entry, name, "breaker_sampling_s") ?? 30),
            BreakerBreakDuration = TimeSpan.FromSeconds(Get<double?>(entry, name, "breaker_break_s") ?? 15),
            ContextSize = Get<int?>(entry, name, "context_size") ?? 0,
            Vocabulary = Get<string>(entry, name, "vocabulary"),
            VocabularySize = Get<int?>(entry, name, "vocabulary_size") ?? 65536,
        };
        o.Validate();
        return o;
    }

    /// <summary>Checks ranges; throws <see cref="ConfigException"/> naming the model and setting.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Name)) throw new ConfigException("openai model: 'name' is empty");
        if (!Uri.TryCreate(BaseUrl, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
            throw new ConfigException($"model '{Name}': 'base_url' must be an absolute http(s) URL, got '{BaseUrl}'");
        if (string.IsNullOrWhiteSpace(Model)) throw new ConfigException($"model '{Name}': 'model' is empty");
        if (TopLogprobs is < 0 or > 20) throw new ConfigException($"model '{Name}': 'top_logprobs' must be 0..20 (OpenAI's limit), got {TopLogprobs}");
        if (Timeout <= TimeSpan.Zero) throw new ConfigException($"model '{Name}': 'timeout_s' must be > 0");
        if (TotalTimeout is { } t && t <= TimeSpan.Zero) throw new ConfigException($"model '{Name}': 'total_timeout_s' must be > 0");
        if (MaxRetries is < 0 or > 20) throw new ConfigException($"model '{Name}': 'max_retries' must be 0..20, got {MaxRetries}");
        if (BackoffBase < TimeSpan.Zero) throw new ConfigException($"model '{Name}': 'backoff_base_ms' must be >= 0");
        if (BreakerFailureRatio is <= 0 or > 1) throw new ConfigException($"model '{Name}': 'breaker_failure_ratio' must be in (0, 1]");
        if (BreakerMinimumThroughput < 2) throw new ConfigException($"model '{Name}': 'breaker_minimum_throughput' must be >= 2");
        if (BreakerSamplingDuration < TimeSpan.FromMilliseconds(500)) throw new ConfigException($"model '{Name}': 'breaker_sampling_s' must be >= 0.5");
        if (BreakerBreakDuration < TimeSpan.FromMilliseconds(500)) throw new ConfigException($"model '{Name}': 'breaker_break_s' must be >= 0.5");
        if (ContextSize < 0) throw new ConfigException($"model '{Name}': 'context_size' must be >= 0");
        if (VocabularySize < 16) throw new ConfigException($"model '{Name}': 'vocabulary_size' must be >= 16");
        if ((InputPricePerMillion ?? 0) < 0 || (OutputPricePerMillion ?? 0) < 0) throw new ConfigException($"model '{Name}': prices must be >= 0");
    }

    /// <summary>The effective whole-call timeout.</summary>
    public TimeSpan EffectiveTotalTimeout =>
        TotalTimeout ?? Timeout * (MaxRetries + 1) + BackoffBase * Math.Pow(2, MaxRetries) + TimeSpan.FromSeconds(1);

    private static T? Get<T>(JsonObject entry, string model, string key)
    {
        if (!entry.TryGetPropertyValue(key, out var node) || node is null) return default;
        try
        {
            return node.Deserialize<T>();
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            throw new ConfigException($"model '{model}': '{key}' should be {Nullable.GetUnderlyingType(typeof(T))?.Name ?? typeof(T).Name}, got {node.ToJsonString()}", e);
        }
    }
}
