using System.Net;
using System.Net.Sockets;

namespace Consort.Evaluation;

/// <summary>
/// One line for a failed model call that names the underlying cause: connection refused, a timeout, an HTTP status,
/// a DNS failure. A user acting on "0.000 on every item" needs that cause, not a wrapper type.
/// </summary>
public static class ErrorText
{
    /// <summary>Describes <paramref name="e"/>: its message (without a .NET type name for Consort's own errors), then the
    /// root cause in brackets when the message does not already say it.</summary>
    /// <param name="e">The failure.</param>
    /// <param name="timedOut">True when the item's own time limit cancelled it.</param>
    /// <param name="timeout">That limit.</param>
    public static string Describe(Exception e, bool timedOut = false, TimeSpan? timeout = null)
    {
        if (timedOut && e is OperationCanceledException)
            return $"timed out after {timeout?.TotalSeconds:0.###} s (the item's time limit) [cause: timeout]";
        string text = e is ConsortException ? e.Message : $"{e.GetType().Name}: {e.Message}";
        var cause = Cause(e);
        bool said = cause is not null && (text.Contains(cause, StringComparison.OrdinalIgnoreCase)
                                          || (cause.StartsWith("aborted", StringComparison.Ordinal) && text.Contains("timed out", StringComparison.OrdinalIgnoreCase)));
        if (cause is not null && !said) text += $" [cause: {cause}]";
        return OneLine(text);
    }

    /// <summary>The root cause in words ("connection refused", "timeout", "HTTP 503 ServiceUnavailable", ...), or null.</summary>
    public static string? Cause(Exception e)
    {
        string? found = null;
        for (var x = e; x is not null; x = x.InnerException)
        {
            switch (x)
            {
                case SocketException s:
                    return s.SocketErrorCode switch
                    {
                        SocketError.ConnectionRefused => "connection refused",
                        SocketError.TimedOut => "timeout (connecting)",
                        SocketError.HostNotFound or SocketError.NoData => "host not found",
                        SocketError.ConnectionReset => "connection reset",
                        SocketError.OperationAborted => "aborted (timeout or cancel)",
                        SocketError.NetworkUnreachable or SocketError.HostUnreachable => "network unreachable",
                        var other => $"socket error {other}",
                    };
                case HttpRequestException { StatusCode: { } status }:
                    found ??= $"HTTP {(int)status} {status}";
                    break;
                case TimeoutException:
                    found ??= "timeout";
                    break;
                case OperationCanceledException:
                    found ??= "timeout";
                    break;
                case IOException io when io.Message.Contains("reset", StringComparison.OrdinalIgnoreCase):
                    found ??= "connection reset";
                    break;
            }
            if (x.GetType().Name == "ClientResultException" && x.GetType().GetProperty("Status")?.GetValue(x) is int code and > 0)
                found ??= $"HTTP {code} {(HttpStatusCode)code}";
            if (x.GetType().Name == "TimeoutRejectedException") found ??= "timeout";
        }
        return found;
    }

    /// <summary>The text on one line (newlines folded), at most 500 characters.</summary>
    public static string OneLine(string text)
    {
        var s = string.Join(" ", text.Split(['\r', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        return s.Length > 500 ? s[..500] + "..." : s;
    }
}
