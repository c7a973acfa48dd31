using System.Net;
using System.Text.RegularExpressions;

namespace Consort.Gateway;

/// <summary>What kind of failure an upstream call ended with; decides retries, cooldowns and which fallbacks apply.</summary>
public enum FailureKind
{
    /// <summary>Connection failure, 5xx, a broken circuit, a cut or stalled stream, any other upstream error.</summary>
    Error,
    /// <summary>The upstream took too long.</summary>
    Timeout,
    /// <summary>429 or an exhausted quota upstream.</summary>
    RateLimit,
    /// <summary>The prompt does not fit the model's context window.</summary>
    ContextWindow,
    /// <summary>The request itself is bad (4xx other than 408/429, context excepted): retrying elsewhere would fail the same way.</summary>
    BadRequest,
}

/// <summary>An upstream stream that stalled (no update for the stall limit) or ended without a finish reason.</summary>
public sealed class UpstreamStreamException(string message, bool stalled, Exception? inner = null) : ConsortException(message, inner)
{
    /// <summary>True for a stall, false for a stream cut before its finish reason.</summary>
    public bool Stalled { get; } = stalled;
}

/// <summary>Every deployment and fallback of a model failed; the message lists each attempt.</summary>
public sealed class GatewayExhaustedException(string message, FailureKind kind, Exception? inner = null) : ConsortException(message, inner)
{
    /// <summary>Kind of the last failure (the server maps it to a status: 429, 504, 400 or 502).</summary>
    public FailureKind Kind { get; } = kind;
}

/// <summary>Classifies exceptions from any backend (OpenAI SDK, HttpClient, Consort's own messages).</summary>
public static partial class GatewayErrors
{
    [GeneratedRegex(@"context[ _-]?(length|window)|maximum context|exceeds (the )?(model'?s? )?context|prompt is too long|too many tokens|context_length_exceeded", RegexOptions.IgnoreCase)]
    private static partial Regex ContextPattern();

    [GeneratedRegex(@"HTTP (?<code>\d{3})")]
    private static partial Regex StatusPattern();

    /// <summary>The kind of <paramref name="e"/>, looking through inner exceptions.</summary>
    public static FailureKind Classify(Exception e)
    {
        for (var x = e; x is not null; x = x.InnerException)
        {
            switch (x)
            {
                case UpstreamStreamException: return FailureKind.Error;
                case GatewayExhaustedException g: return g.Kind;
                case TimeoutException: return FailureKind.Timeout;
                case HttpRequestException { StatusCode: { } s }: return FromStatus((int)s, x.Message);
            }
            // The OpenAI SDK's ClientResultException and Polly's TimeoutRejectedException, without package references.
            if (x.GetType().Name == "ClientResultException" && x.GetType().GetProperty("Status")?.GetValue(x) is int status and not 0)
                return FromStatus(status, x.Message);
            if (x.GetType().Name == "TimeoutRejectedException") return FailureKind.Timeout;
        }
        string message = e.Message;
        if (ContextPattern().IsMatch(message)) return FailureKind.ContextWindow;
        if (StatusPattern().Match(message) is { Success: true } m) return FromStatus(int.Parse(m.Groups["code"].Value), message);
        if (message.Contains("timed out", StringComparison.OrdinalIgnoreCase)) return FailureKind.Timeout;
        return FailureKind.Error;
    }

    private static FailureKind FromStatus(int status, string message) => status switch
    {
        429 => FailureKind.RateLimit,
        408 or 504 => FailureKind.Timeout,
        >= 400 and < 500 when ContextPattern().IsMatch(message) => FailureKind.ContextWindow,
        413 => FailureKind.ContextWindow,
        >= 400 and < 500 => FailureKind.BadRequest,
        _ => FailureKind.Error,
    };

    /// <summary>The HTTP status the gateway answers for a failure of this kind.</summary>
    public static HttpStatusCode StatusFor(FailureKind kind) => kind switch
    {
        FailureKind.RateLimit => HttpStatusCode.TooManyRequests,
        FailureKind.Timeout => HttpStatusCode.GatewayTimeout,
        FailureKind.ContextWindow or FailureKind.BadRequest => HttpStatusCode.BadRequest,
        _ => HttpStatusCode.BadGateway,
    };

    /// <summary>Snake-case name used in metrics and logs.</summary>
    public static string Name(this FailureKind kind) => kind switch
    {
        FailureKind.RateLimit => "rate_limit",
        FailureKind.ContextWindow => "context_window",
        FailureKind.BadRequest => "bad_request",
        FailureKind.Timeout => "timeout",
        _ => "error",
    };
}
