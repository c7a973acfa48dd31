using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Consort.Methods;

/// <summary>
/// Limits on one request of a collaboration: most inner calls, tokens (in + out), cost, or wall seconds. A method
/// checks <see cref="BudgetMeter.Allows"/> before each inner call and, once a limit is reached, finishes with what
/// it has (a smaller vote, fewer rounds) instead of failing.
/// </summary>
/// <param name="Calls">Most inner calls.</param>
/// <param name="Tokens">Most tokens, input and output together.</param>
/// <param name="Cost">Most cost (in the models' price unit).</param>
/// <param name="Seconds">Most wall seconds since the request started.</param>
public sealed record RequestBudget(long? Calls, long? Tokens, decimal? Cost, double? Seconds)
{
    private static readonly string[] Keys = ["calls", "tokens", "cost", "seconds"];

    /// <summary>Reads the <c>budget</c> hyperparameter; unknown keys and values that are not positive are errors before work.</summary>
    public static RequestBudget Parse(JsonObject budget, MethodPlan plan)
    {
        if (budget.Count == 0) throw plan.Error("budget", $"is empty; give any of {string.Join(", ", Keys)}");
        double? Read(string key)
        {
            if (!budget.TryGetPropertyValue(key, out var node) || node is null) return null;
            if (node is not JsonValue v || v.GetValueKind() != JsonValueKind.Number || !v.TryGetValue<double>(out var d) || !double.IsFinite(d))
                throw plan.Error("budget", $"'{key}' should be a number, got {Limits.ForMessage(node.ToJsonString())}");
            if (d <= 0) throw plan.Error("budget", $"'{key}' = {d} must be greater than 0 (a budget of zero would do no work)");
            if (key is "calls" or "tokens" && d != Math.Floor(d)) throw plan.Error("budget", $"'{key}' = {d} must be a whole number");
            return d;
        }
        foreach (var (key, _) in budget)
            if (!Keys.Contains(key)) throw plan.Error("budget", $"has unknown key '{Limits.ForMessage(key)}'; valid: {string.Join(", ", Keys)}");
        return new((long?)Read("calls"), (long?)Read("tokens"), Read("cost") is { } c ? (decimal)c : null, Read("seconds"));
    }

    /// <summary>A fresh meter for one request.</summary>
    public BudgetMeter Start() => new(this);
}

/// <summary>What one request has spent against its <see cref="RequestBudget"/> (thread-safe).</summary>
public sealed class BudgetMeter(RequestBudget? budget)
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly object _gate = new();
    private long _calls, _tokens;
    private decimal _cost;

    /// <summary>Which limit was reached (null while none).</summary>
    public string? Reached { get; private set; }

    /// <summary>Calls started.</summary>
    public long Calls { get { lock (_gate) return _calls; } }

    /// <summary>
    /// True when another call fits; counts it as started. The first refusal records which limit was reached. A call
    /// already running is never cut: the limits are checked between calls. <paramref name="force"/> counts the call
    /// without checking (the one call that gives the final answer is always made).
    /// </summary>
    public bool TryStart(bool force = false)
    {
        lock (_gate)
        {
            if (!force && Exceeded() is { } why) { Reached ??= why; return false; }
            _calls++;
            return true;
        }
    }

    /// <summary>True while no limit is reached (without counting a call); the first time one is, it is recorded.</summary>
    public bool Allows
    {
        get
        {
            lock (_gate)
            {
                if (Exceeded() is not { } why) return true;
                Reached ??= why;
                return false;
            }
        }
    }

    private string? Exceeded() => budget is null ? null
        : budget.Calls is { } c && _calls >= c ? $"calls {_calls} of {c}"
        : budget.Tokens is { } t && _tokens >= t ? $"tokens {_tokens} of {t}"
        : budget.Cost is { } k && _cost >= k ? $"cost {_cost} of {k}"
        : budget.Seconds is { } s && _clock.Elapsed.TotalSeconds >= s ? $"seconds {_clock.Elapsed.TotalSeconds:F1} of {s}"
        : null;

    /// <summary>Adds a finished call's usage.</summary>
    public void Spent(long tokens, decimal? cost)
    {
        lock (_gate) { _tokens += tokens; _cost += cost ?? 0; }
    }
}
