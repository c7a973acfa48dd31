using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Consort.Evaluation;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Caching.Distributed;

namespace Consort.Caching;

/// <summary>Settings of <see cref="ConsortCacheChatClient"/>.</summary>
public sealed record ConsortCacheOptions
{
    /// <summary>How long an entry lives; null keeps it until the store drops it.</summary>
    public TimeSpan? Expiration { get; init; }
    /// <summary>Counters to add hits and misses to besides the current <see cref="CacheCounters.Scope"/>; null for none.</summary>
    public CacheCounters? Counters { get; init; }
    /// <summary>True when the model decodes greedily if no temperature is given (Consort's llama.cpp backend), so such
    /// calls are deterministic too; endpoints use their server's default temperature, so leave it false for them.</summary>
    public bool UnsetTemperatureIsGreedy { get; init; }
}

/// <summary>
/// Caches deterministic calls (temperature 0, or a seed given) of one model in an <see cref="IDistributedCache"/>
/// (Consort's SQLite store locally, Redis in a gateway), keyed by the model's identity (file digest, or endpoint and
/// model name), the messages, the options and the seed. The whole response is kept as JSON (text, finish reason,
/// usage, token log-probabilities, cost, trace, who answered), and a hit gives it back with Consort's properties in
/// their typed forms, so callers cannot tell a hit from a miss. Sampling without a seed is passed through.
/// </summary>
public sealed class ConsortCacheChatClient : DelegatingChatClient
{
    /// <summary>Version of the key and entry layout; bump to invalidate every entry.</summary>
    public const int FormatVersion = 1;

    // MEAI's options, plus NaN and infinities (a cascade's threshold can be +inf in its trace data).
    private static readonly JsonSerializerOptions Json = new(AIJsonUtilities.DefaultOptions)
    {
        NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    private readonly IDistributedCache _cache;
    private readonly string _identity;
    private readonly ConsortCacheOptions _options;

    /// <summary>Wraps <paramref name="inner"/>.</summary>
    /// <param name="inner">The model's chat client.</param>
    /// <param name="cache">The store.</param>
    /// <param name="modelIdentity">What makes the model's outputs what they are (<see cref="ModelDescriptor.Identity"/>).</param>
    /// <param name="options">Expiration and counters.</param>
    public ConsortCacheChatClient(IChatClient inner, IDistributedCache cache, string modelIdentity, ConsortCacheOptions? options = null) : base(inner)
    {
        ArgumentNullException.ThrowIfNull(cache);
        ArgumentException.ThrowIfNullOrWhiteSpace(modelIdentity);
        _cache = cache; _identity = modelIdentity; _options = options ?? new();
    }

    /// <inheritdoc />
    public override async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var list = messages as IReadOnlyList<ChatMessage> ?? messages.ToList();
        if (!IsDeterministic(options, _options.UnsetTemperatureIsGreedy))
        {
            CacheCounters.Skip();
            return await base.GetResponseAsync(list, options, cancellationToken).ConfigureAwait(false);
        }
        string key = Key(_identity, list, options);
        var cached = await _cache.GetAsync(key, cancellationToken).ConfigureAwait(false);
        if (cached is not null && Decode(cached) is { } hit)
        {
            CacheCounters.Hit();
            _options.Counters?.AddHit();
            return hit;
        }
        CacheCounters.Miss();
        _options.Counters?.AddMiss();
        var response = await base.GetResponseAsync(list, options, cancellationToken).ConfigureAwait(false);
        await StoreAsync(key, response, cancellationToken).ConfigureAwait(false);
        return response;
    }

    /// <summary>Streams a cached response as updates; otherwise streams the inner client and stores the result.</summary>
    public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var list = messages as IReadOnlyList<ChatMessage> ?? messages.ToList();
        if (!IsDeterministic(options, _options.UnsetTemperatureIsGreedy))
        {
            CacheCounters.Skip();
            await foreach (var u in base.GetStreamingResponseAsync(list, options, cancellationToken).ConfigureAwait(false)) yield return u;
            yield break;
        }
        string key = Key(_identity, list, options);
        var cached = await _cache.GetAsync(key, cancellationToken).ConfigureAwait(false);
        if (cached is not null && Decode(cached) is { } hit)
        {
            CacheCounters.Hit();
            _options.Counters?.AddHit();
            foreach (var u in hit.ToChatResponseUpdates()) yield return u;
            yield break;
        }
        CacheCounters.Miss();
        _options.Counters?.AddMiss();
        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in base.GetStreamingResponseAsync(list, options, cancellationToken).ConfigureAwait(false))
        {
            updates.Add(u);
            yield return u;
        }
        await StoreAsync(key, updates.ToChatResponse(), cancellationToken).ConfigureAwait(false);
    }

    // A response the cache cannot hold (a value JSON cannot express) is returned all the same, just not stored.
    private async Task StoreAsync(string key, ChatResponse response, CancellationToken ct)
    {
        byte[] bytes;
        try { bytes = Encode(response); }
        catch (Exception e) when (e is NotSupportedException or ArgumentException or JsonException or InvalidOperationException) { return; }
        await _cache.SetAsync(key, bytes, new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = _options.Expiration }, ct).ConfigureAwait(false);
    }

    /// <summary>True for calls whose answer is a function of their inputs: temperature 0, or a seed given (or no
    /// temperature, for a model that then decodes greedily).</summary>
    public static bool IsDeterministic(ChatOptions? options, bool unsetTemperatureIsGreedy = false) =>
        options?.Temperature is 0f || options?.Seed is not null || (unsetTemperatureIsGreedy && options?.Temperature is null);

    /// <summary>The cache key of a call: SHA-256 over the model identity, messages and options (canonical JSON).</summary>
    public static string Key(string modelIdentity, IReadOnlyList<ChatMessage> messages, ChatOptions? options)
    {
        var o = options;
        var extra = new JsonObject();
        if (o?.AdditionalProperties is { } props)
            foreach (var (k, v) in props.OrderBy(p => p.Key, StringComparer.Ordinal))
                extra[k] = v switch
                {
                    null => null,
                    // A function (the task's answer normalizer) counts by what it is, not by its closure.
                    Delegate d => "fn:" + d.Method.DeclaringType?.FullName + "." + d.Method.Name,
                    _ => Node(v),
                };
        var key = new JsonObject
        {
            ["v"] = FormatVersion,
            ["model"] = modelIdentity,
            ["messages"] = new JsonArray(messages.Select(m => (JsonNode)new JsonObject
            {
                ["role"] = m.Role.Value,
                ["text"] = m.Text,
                ["contents"] = m.Contents.All(c => c is TextContent) ? null : Node(m.Contents),
            }).ToArray()),
            ["max_tokens"] = o?.MaxOutputTokens,
            ["temperature"] = o?.Temperature,
            ["top_p"] = o?.TopP,
            ["top_k"] = o?.TopK,
            ["seed"] = o?.Seed,
            ["stop"] = o?.StopSequences is { } stop ? new JsonArray(stop.Select(s => (JsonNode)JsonValue.Create(s)!).ToArray()) : null,
            ["frequency_penalty"] = o?.FrequencyPenalty,
            ["presence_penalty"] = o?.PresencePenalty,
            ["response_format"] = o?.ResponseFormat is { } rf ? Node(rf) : null,
            ["model_id"] = o?.ModelId,
            ["extra"] = extra,
        };
        return "consort:chat:" + RunDefinition.HashJson(key);
    }

    private static JsonNode? Node(object value)
    {
        try { return JsonSerializer.SerializeToNode(value, value.GetType(), Json); }
        catch (Exception e) when (e is NotSupportedException or ArgumentException or JsonException or InvalidOperationException)
        {
            return "unserializable:" + value.GetType().FullName + ":" + value; // still a stable part of the key
        }
    }

    /// <summary>The response as stored: MEAI's JSON form of <see cref="ChatResponse"/> (raw representation dropped).</summary>
    public static byte[] Encode(ChatResponse response)
    {
        var copy = new ChatResponse(response.Messages)
        {
            ResponseId = response.ResponseId, ConversationId = response.ConversationId, ModelId = response.ModelId,
            CreatedAt = response.CreatedAt, FinishReason = response.FinishReason, Usage = response.Usage,
            AdditionalProperties = response.AdditionalProperties,
        };
        return JsonSerializer.SerializeToUtf8Bytes(copy, Json);
    }

    /// <summary>A stored response, with Consort's properties (logprobs, trace, cost) back in their typed forms; null when unreadable.</summary>
    public static ChatResponse? Decode(byte[] bytes)
    {
        try
        {
            var r = JsonSerializer.Deserialize<ChatResponse>(bytes, Json);
            if (r is null) return null;
            if (r.AdditionalProperties is { } props)
            {
                if (r.GetTokenLogprobs() is { } lp) props[TokenLogprobExtensions.LogprobsKey] = lp;
                if (props.ContainsKey(ConsortResponseExtensions.TraceKey)) props[ConsortResponseExtensions.TraceKey] = r.GetTrace();
                if (r.GetCost() is { } cost) props[ConsortResponseExtensions.CostKey] = cost;
                foreach (var (k, v) in props.ToList())
                    if (v is JsonElement { ValueKind: JsonValueKind.String } s) props[k] = s.GetString();
            }
            return r;
        }
        catch (Exception e) when (e is JsonException or NotSupportedException or InvalidOperationException)
        {
            return null; // a damaged or foreign entry: compute again
        }
    }
}

/// <summary>Builder extension in the style of <c>UseDistributedCache</c>.</summary>
public static class ConsortCacheChatClientBuilderExtensions
{
    /// <summary>Adds <see cref="ConsortCacheChatClient"/> to the pipeline.</summary>
    /// <param name="builder">The builder.</param>
    /// <param name="cache">The store (SQLite: <see cref="SqliteDistributedCache"/>; any <see cref="IDistributedCache"/> works).</param>
    /// <param name="modelIdentity">The model's identity (<see cref="ModelDescriptor.Identity"/>).</param>
    /// <param name="options">Expiration and counters.</param>
    public static ChatClientBuilder UseConsortCache(this ChatClientBuilder builder, IDistributedCache cache, string modelIdentity, ConsortCacheOptions? options = null) =>
        builder.Use(inner => new ConsortCacheChatClient(inner, cache, modelIdentity, options));
}
