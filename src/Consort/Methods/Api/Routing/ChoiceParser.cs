using System.Text.RegularExpressions;

namespace Consort.Methods.Api.Routing;

/// <summary>
/// Reads which candidate a model named in free text: by name (case-insensitive, whole word), by number
/// (1-based, or 0-based where the prompt counted from 0), or by letter (A, B, ... as a standalone capital).
/// The earliest mention wins, so "Model 2, not model 1" is 2. Used by the prompt router, the lm router and the
/// switch-generation selector.
/// </summary>
public static partial class ChoiceParser
{
    /// <summary>The index named in <paramref name="text"/>, or null when it names none of <paramref name="names"/>.</summary>
    /// <param name="text">The model's answer.</param>
    /// <param name="names">Candidate names, in order.</param>
    /// <param name="firstNumber">What the prompt numbered the first candidate (1, or 0 for MoCo's switch selector).</param>
    public static int? Parse(string text, IReadOnlyList<string> names, int firstNumber = 1)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        var hits = new List<(int Position, int Index)>();
        for (int i = 0; i < names.Count; i++)
        {
            var m = Regex.Match(text, $@"(?<![\w-]){Regex.Escape(names[i])}(?![\w-])", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);
            if (m.Success) hits.Add((m.Index, i));
        }
        foreach (Match m in Number().Matches(text))
            if (int.TryParse(m.Value, out int k) && k - firstNumber is var idx && idx >= 0 && idx < names.Count) { hits.Add((m.Index, idx)); break; }
        foreach (Match m in Letter().Matches(text))
        {
            int idx = m.Groups[1].Value[0] - 'A';
            if (idx < names.Count) { hits.Add((m.Index, idx)); break; }
        }
        return hits.Count == 0 ? null : hits.OrderBy(h => h.Position).First().Index;
    }

    [GeneratedRegex(@"(?<![\w.])\d+(?![\w]|\.\d)")]
    private static partial Regex Number();

    // A lone capital letter, optionally in brackets ("B", "(B)", "Option B."), not the article "A" before a word.
    [GeneratedRegex(@"(?<![\w])\(?([A-Z])\)?(?![\w])(?!\s+[a-z])")]
    private static partial Regex Letter();
}
