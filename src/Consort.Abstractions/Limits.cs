using System.Text;

namespace Consort;

/// <summary>
/// Upper bounds on sizes a user controls (configs, hyperparameters, requests), in one place, so that no input
/// can make Consort hang or exhaust memory; each is checked before work with a message naming the key and the bound.
/// </summary>
public static class Limits
{
    /// <summary>Most tokens one call may generate.</summary>
    public const int MaxGeneratedTokens = 1 << 20;
    /// <summary>Most entries of a list-valued hyperparameter (weights, thresholds, descriptions, ...).</summary>
    public const int MaxListOption = 4096;
    /// <summary>Most samples, rounds, layers or agents of one method call (each multiplies inner calls).</summary>
    public const int MaxRepeats = 1024;
    /// <summary>Most iterations or population of a search (swarms, CMA-ES, ...).</summary>
    public const int MaxSearchSteps = 100_000;
    /// <summary>Longest user-supplied text echoed in a message.</summary>
    public const int MessageTextLength = 200;

    /// <summary>User text made safe for a one-line message: control characters escaped, cut to <see cref="MessageTextLength"/>.</summary>
    public static string ForMessage(string? text)
    {
        if (text is null) return "null";
        var sb = new StringBuilder(Math.Min(text.Length, MessageTextLength) + 16);
        foreach (char c in text)
        {
            if (sb.Length >= MessageTextLength) { sb.Append($"... ({text.Length} characters)"); break; }
            if (c == '\n') sb.Append("\\n");
            else if (c == '\r') sb.Append("\\r");
            else if (c == '\t') sb.Append("\\t");
            else if (char.IsControl(c)) sb.Append($"\\u{(int)c:x4}");
            else sb.Append(c);
        }
        return sb.ToString();
    }
}
