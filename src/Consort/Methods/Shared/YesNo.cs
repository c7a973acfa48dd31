using System.Text.RegularExpressions;

namespace Consort.Methods;

/// <summary>
/// Reads a yes/no answer from free text, as small models write it: "Yes.", "**No**", "yes, I am", "I am not confident",
/// "Unconfident", "Confident: no". The first yes- or no-word decides; a negated confidence ("not confident", "not sure")
/// reads as no. Text that says neither reads as null (the caller decides what unreadable means).
/// </summary>
public static partial class YesNo
{
    private static readonly HashSet<string> Yes = ["yes", "y", "yeah", "yep", "yup", "sure", "confident", "certain", "certainly", "definitely", "absolutely", "correct", "true"];
    private static readonly HashSet<string> No = ["no", "n", "nope", "nah", "unconfident", "uncertain", "unsure", "incorrect", "false", "not", "don", "dont", "doubt", "doubtful"];

    /// <summary>True for yes, false for no, null when <paramref name="text"/> says neither.</summary>
    public static bool? Parse(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        var lower = text.ToLowerInvariant();
        // A negated confidence anywhere before a plain yes ("I'm not confident, yes I guessed") is a no.
        var negated = Negated().Match(lower);
        foreach (Match w in Word().Matches(lower))
        {
            if (negated.Success && negated.Index <= w.Index) return false;
            if (Yes.Contains(w.Value)) return true;
            if (No.Contains(w.Value)) return false;
        }
        return negated.Success ? false : null;
    }

    [GeneratedRegex(@"[a-z]+")]
    private static partial Regex Word();

    [GeneratedRegex(@"(\bnot|n't|\bnever)\s+(very\s+|so\s+|really\s+|entirely\s+|completely\s+|fully\s+|too\s+)?(confident|sure|certain)\b|\bunconfident\b|\bunsure\b|\buncertain\b")]
    private static partial Regex Negated();
}
