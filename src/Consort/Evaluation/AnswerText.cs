using System.Globalization;
using System.Text.RegularExpressions;

namespace Consort.Evaluation;

/// <summary>
/// Reads final answers out of free text and compares them: <c>\boxed{...}</c>, "####", "Answer:" markers,
/// numbers with commas, fractions, percentages and LaTeX fractions.
/// </summary>
public static partial class AnswerText
{
    /// <summary>Relative tolerance of numeric equality.</summary>
    public const double RelativeTolerance = 1e-6;
    /// <summary>Absolute tolerance of numeric equality (for values near zero).</summary>
    public const double AbsoluteTolerance = 1e-9;

    /// <summary>
    /// The final answer of an output (not yet normalized): the last <c>\boxed{}</c>, else the text after the last
    /// "####", else after the last "answer is"/"Answer:", else the whole output when it is a number, else the last
    /// number, else the first non-empty line.
    /// </summary>
    public static string ExtractFinal(string output)
    {
        if (string.IsNullOrWhiteSpace(output)) return "";
        var boxed = LastBoxed(output);
        if (boxed is not null) return boxed.Trim();

        int hashes = output.LastIndexOf("####", StringComparison.Ordinal);
        if (hashes >= 0)
        {
            var rest = FirstLine(output[(hashes + 4)..]);
            if (rest.Length > 0) return LeadingAnswer(rest);
        }

        Match? marker = null;
        foreach (Match m in Marker().Matches(output)) marker = m;
        if (marker is not null)
        {
            var seg = marker.Groups["a"].Value.Trim();
            if (seg.Length > 0) return LeadingAnswer(seg);
        }

        var whole = output.Trim();
        if (TryParseNumber(Normalize(whole), out _)) return whole;
        var last = LastNumber(output);
        if (last is not null) return last;
        return FirstLine(output);
    }

    /// <summary>Normalized final answer (<see cref="ExtractFinal"/> then <see cref="Normalize"/>).</summary>
    public static string ExtractNormalized(string output) => Normalize(ExtractFinal(output));

    /// <summary>
    /// Canonical form for comparison: trimmed, lower case, no "$", LaTeX spacing/\left/\right/\text removed,
    /// \dfrac and \tfrac as \frac, "1,000" as "1000", no trailing period, "(a)" as "a".
    /// </summary>
    public static string Normalize(string text)
    {
        var s = text.Trim();
        s = s.Replace("\\$", "").Replace("$", "").Replace("\\!", "").Replace("\\,", "").Replace("\\;", "")
             .Replace("\\left", "").Replace("\\right", "").Replace("\\displaystyle", "")
             .Replace("\\dfrac", "\\frac").Replace("\\tfrac", "\\frac").Replace("\\%", "%")
             .Replace("^{\\circ}", "").Replace("^\\circ", "");
        s = TextCommand().Replace(s, "$1");
        s = s.ToLowerInvariant();
        s = Whitespace().Replace(s, " ").Trim();
        s = ThousandsComma().Replace(s, "");
        while (s.Length > 0 && (s[^1] == '.' || s[^1] == '!' || s[^1] == '?')) s = s[..^1].TrimEnd();
        if (s.Length > 2 && s[0] == '(' && s[^1] == ')' && !s[1..^1].Contains(',') && !s[1..^1].Contains('(')) s = s[1..^1].Trim();
        return s;
    }

    /// <summary>True when two answers are the same: equal after normalization, or numerically equal within tolerance.</summary>
    public static bool Equivalent(string predicted, string gold)
    {
        var p = Normalize(predicted);
        var g = Normalize(gold);
        if (p == g) return true;
        if (TryParseNumber(p, out var a) && TryParseNumber(g, out var b)) return NumbersEqual(a, b);
        return p.Replace(" ", "") == g.Replace(" ", "");
    }

    /// <summary>Equality within <see cref="RelativeTolerance"/> / <see cref="AbsoluteTolerance"/>.</summary>
    public static bool NumbersEqual(double a, double b) =>
        Math.Abs(a - b) <= Math.Max(AbsoluteTolerance, RelativeTolerance * Math.Max(Math.Abs(a), Math.Abs(b)));

    /// <summary>
    /// Parses a (normalized) number: "1000", "-0.5", "1e3", "3/4", "\frac{3}{4}", "-\frac{1}{2}", "50%" (as 50),
    /// "$12". Returns false for anything else.
    /// </summary>
    public static bool TryParseNumber(string text, out double value)
    {
        value = 0;
        var s = Normalize(text).Replace(" ", "");
        if (s.EndsWith('%')) s = s[..^1];
        if (s.Length == 0) return false;
        var frac = LatexFraction().Match(s);
        if (frac.Success)
        {
            if (!TryParsePlain(frac.Groups[2].Value, out var n) || !TryParsePlain(frac.Groups[3].Value, out var d) || d == 0) return false;
            value = (frac.Groups[1].Value == "-" ? -1 : 1) * n / d;
            return true;
        }
        int slash = s.IndexOf('/');
        if (slash > 0)
        {
            if (!TryParsePlain(s[..slash], out var n) || !TryParsePlain(s[(slash + 1)..], out var d) || d == 0) return false;
            value = n / d;
            return true;
        }
        return TryParsePlain(s, out value);
    }

    private static bool TryParsePlain(string s, out double v) =>
        double.TryParse(s.Trim('(', ')'), NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent,
            CultureInfo.InvariantCulture, out v) && double.IsFinite(v);

    /// <summary>The content of the last <c>\boxed{...}</c> (or <c>\fbox{}</c>), nested braces kept; null when none.</summary>
    public static string? LastBoxed(string text)
    {
        int at = Math.Max(text.LastIndexOf("\\boxed", StringComparison.Ordinal), text.LastIndexOf("\\fbox", StringComparison.Ordinal));
        while (at >= 0)
        {
            int i = at + (text.AsSpan(at).StartsWith("\\boxed") ? 6 : 5);
            while (i < text.Length && text[i] == ' ') i++;
            if (i < text.Length && text[i] == '{')
            {
                int depth = 0;
                for (int j = i; j < text.Length; j++)
                {
                    if (text[j] == '{') depth++;
                    else if (text[j] == '}' && --depth == 0) return text[(i + 1)..j];
                }
            }
            else if (i < text.Length) // "\boxed 5"
            {
                var token = BoxedToken().Match(text, i);
                if (token.Success && token.Index == i) return token.Value;
            }
            // Unclosed or empty: try an earlier one.
            at = at == 0 ? -1 : Math.Max(text.LastIndexOf("\\boxed", at - 1, StringComparison.Ordinal), text.LastIndexOf("\\fbox", at - 1, StringComparison.Ordinal));
        }
        return null;
    }

    /// <summary>The last number in the text ("1,000", "-3.5", "3/4", "\frac{3}{4}"), as written; null when none.</summary>
    public static string? LastNumber(string text)
    {
        string? last = null;
        foreach (Match m in NumberToken().Matches(text)) last = m.Value;
        return last;
    }

    private static string? FirstNumber(string text)
    {
        var m = NumberToken().Match(text);
        return m.Success ? m.Value : null;
    }

    // After a marker: a leading number or option letter, else the first number, else the first sentence.
    private static string LeadingAnswer(string segment)
    {
        var seg = segment.Trim().TrimStart(':', '*', ' ').TrimEnd('*');
        var lead = NumberToken().Match(seg);
        if (lead.Success && lead.Index == 0) return lead.Value;
        var option = OptionLetter().Match(seg);
        if (option.Success) return option.Groups[1].Value;
        var sentence = SentenceEnd().Split(seg, 2)[0].Trim();
        if (TryParseNumber(Normalize(sentence), out _)) return sentence;
        var first = FirstNumber(sentence);
        if (first is not null && WordCount().Matches(sentence).Count <= 8) return first;
        return sentence;
    }

    private static string FirstLine(string text) =>
        text.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.Length > 0) ?? "";

    [GeneratedRegex(@"(?:final\s+answer|answer)\s*(?:is|:|=)\s*(?<a>[^\n]*)", RegexOptions.IgnoreCase)]
    private static partial Regex Marker();

    [GeneratedRegex(@"-?\\[dt]?frac\{[^{}]*\}\{[^{}]*\}|-?\$?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:\s*/\s*\d+(?:\.\d+)?)?%?")]
    private static partial Regex NumberToken();

    [GeneratedRegex(@"^([+-]?)\\frac\{([^{}]*)\}\{([^{}]*)\}$")]
    private static partial Regex LatexFraction();

    [GeneratedRegex(@"^\(?([A-Za-z])\)(?:\s|$|[.,])")]
    private static partial Regex OptionLetter();

    [GeneratedRegex(@"(?<=[^\d])\.\s|\.$")]
    private static partial Regex SentenceEnd();

    [GeneratedRegex(@"\S+")]
    private static partial Regex WordCount();

    [GeneratedRegex(@"[^\s$]+")]
    private static partial Regex BoxedToken();

    [GeneratedRegex(@"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}")]
    private static partial Regex TextCommand();

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();

    [GeneratedRegex(@"(?<=\d),(?=\d{3}(?!\d))")]
    private static partial Regex ThousandsComma();
}
