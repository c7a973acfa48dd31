using System.Text.Json.Nodes;
using Consort.Server.State;

namespace Consort.Server.Keys;

/// <summary>
/// Enforces each key's limits on fixed windows kept in an <see cref="ICounterStore"/> (so replicas sharing Redis share
/// them): requests per minute are counted on admission; tokens per minute and the token and cost budgets are checked on
/// admission against what finished requests recorded. Exceeding any answers 429 with <c>Retry-After</c> = the seconds
/// until the window or period ends.
/// </summary>
public sealed class KeyLimiter(ICounterStore store)
{
    /// <summary>Cost is counted in millionths of the price unit (counters are integers).</summary>
    public const decimal CostScale = 1_000_000m;

    /// <summary>The store the counters live in.</summary>
    public ICounterStore Store { get; } = store;

    /// <summary>Admits a request of <paramref name="key"/> or throws a 429 <see cref="ApiError"/> naming the limit.</summary>
    public async Task AdmitAsync(ApiKey key, CancellationToken ct)
    {
        var l = key.Limits;
        var now = DateTimeOffset.UtcNow;
        long minute = now.ToUnixTimeSeconds() / 60;
        int toNextMinute = (int)(60 - now.ToUnixTimeSeconds() % 60);
        if (l.RequestsPerMinute is { } rpm)
        {
            long n = await Store.AddAsync(Counter(key, $"rpm:{minute}"), 1, TimeSpan.FromSeconds(120), ct).ConfigureAwait(false);
            if (n > rpm) throw Reject(key, $"more than {rpm} requests per minute", toNextMinute, "rpm");
        }
        if (l.TokensPerMinute is { } tpm && await Store.GetAsync(Counter(key, $"tpm:{minute}"), ct).ConfigureAwait(false) >= tpm)
            throw Reject(key, $"{tpm} tokens per minute used", toNextMinute, "tpm");
        if (l.BudgetTokens is not null || l.BudgetCost is not null)
        {
            var (period, end) = l.Period.At(now);
            int toEnd = (int)Math.Ceiling((end - now).TotalSeconds);
            if (l.BudgetTokens is { } bt && await Store.GetAsync(Counter(key, $"budget_tokens:{period}"), ct).ConfigureAwait(false) >= bt)
                throw Reject(key, $"token budget of {bt} per {l.Period} used", toEnd, "budget_tokens");
            if (l.BudgetCost is { } bc && await Store.GetAsync(Counter(key, $"budget_cost:{period}"), ct).ConfigureAwait(false) >= bc * CostScale)
                throw Reject(key, $"cost budget of {bc} per {l.Period} used", toEnd, "budget_cost");
        }
        await Store.AddAsync(Counter(key, "requests"), 1, null, ct).ConfigureAwait(false);
    }

    /// <summary>Records what a finished request used.</summary>
    public async Task RecordAsync(ApiKey key, long tokens, decimal? cost, CancellationToken ct = default)
    {
        var now = DateTimeOffset.UtcNow;
        long minute = now.ToUnixTimeSeconds() / 60;
        long micro = cost is { } c ? (long)Math.Round(c * CostScale) : 0;
        var (period, end) = key.Limits.Period.At(now);
        var untilEnd = end - now + TimeSpan.FromMinutes(5);
        var work = new List<Task>
        {
            Store.AddAsync(Counter(key, "tokens"), tokens, null, ct),
            Store.AddAsync(Counter(key, $"tpm:{minute}"), tokens, TimeSpan.FromSeconds(120), ct),
            Store.AddAsync(Counter(key, $"budget_tokens:{period}"), tokens, untilEnd, ct),
        };
        if (micro > 0)
        {
            work.Add(Store.AddAsync(Counter(key, "cost"), micro, null, ct));
            work.Add(Store.AddAsync(Counter(key, $"budget_cost:{period}"), micro, untilEnd, ct));
        }
        await Task.WhenAll(work).ConfigureAwait(false);
    }

    /// <summary>Usage of <paramref name="key"/>: totals, this minute, this budget period, and its limits.</summary>
    public async Task<JsonObject> UsageAsync(ApiKey key, CancellationToken ct = default)
    {
        var now = DateTimeOffset.UtcNow;
        long minute = now.ToUnixTimeSeconds() / 60;
        var l = key.Limits;
        var (period, end) = l.Period.At(now);
        async Task<long> G(string c) => await Store.GetAsync(Counter(key, c), ct).ConfigureAwait(false);
        return new JsonObject
        {
            ["name"] = key.Name,
            ["state"] = Store.Where,
            ["requests"] = await G("requests"),
            ["tokens"] = await G("tokens"),
            ["cost"] = await G("cost") / CostScale,
            ["minute"] = new JsonObject { ["requests"] = await G($"rpm:{minute}"), ["tokens"] = await G($"tpm:{minute}") },
            ["period"] = new JsonObject
            {
                ["length"] = l.Period.ToString(), ["ends"] = end.ToString("O"),
                ["tokens"] = await G($"budget_tokens:{period}"), ["cost"] = await G($"budget_cost:{period}") / CostScale,
            },
            ["limits"] = new JsonObject
            {
                ["rpm"] = l.RequestsPerMinute, ["tpm"] = l.TokensPerMinute, ["budget_tokens"] = l.BudgetTokens, ["budget_cost"] = l.BudgetCost,
                ["models"] = l.Models is null ? null : new JsonArray([.. l.Models.Order().Select(m => (JsonNode)JsonValue.Create(m)!)]),
            },
        };
    }

    private static string Counter(ApiKey key, string what) => $"key:{key.Name}:{what}";

    private static ApiError Reject(ApiKey key, string what, int retryAfter, string limit)
    {
        ServerMetrics.KeyRejected(key.Name, limit);
        return new ApiError(429, $"key '{key.Name}': {what}; retry in {retryAfter} s", "rate_limit_error", code: "rate_limit_exceeded")
        {
            RetryAfterSeconds = Math.Max(1, retryAfter),
        };
    }
}
