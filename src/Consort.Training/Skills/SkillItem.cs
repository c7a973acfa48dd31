using System.Globalization;
using System.Text.Json.Serialization;

namespace Consort.Training.Skills;

/// <summary>One exact-match question in the shared dataset layout (<c>id</c>, <c>input</c>, <c>output</c>, plus <c>domain</c>).</summary>
public sealed record SkillItem(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("input")] string Input,
    [property: JsonPropertyName("output")] string Output,
    [property: JsonPropertyName("domain")] string Domain);

/// <summary>A skill's generated data: what an expert trains on, and held-out dev/test questions.</summary>
public sealed record SkillData(string Skill, IReadOnlyList<SkillItem> Train, IReadOnlyList<SkillItem> Dev, IReadOnlyList<SkillItem> Test);

/// <summary>Normalized exact match, as the shared exact_match datasets are scored.</summary>
public static class ExactMatch
{
    /// <summary>Trims, collapses whitespace, ignores case; numbers compare by value.</summary>
    public static bool IsMatch(string predicted, string gold)
    {
        string p = Normalize(predicted), g = Normalize(gold);
        if (p == g) return true;
        return double.TryParse(p, NumberStyles.Float, CultureInfo.InvariantCulture, out var a)
               && double.TryParse(g, NumberStyles.Float, CultureInfo.InvariantCulture, out var b) && a == b;
    }

    /// <summary>The normalized form.</summary>
    public static string Normalize(string s) => string.Join(' ', s.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)).ToLowerInvariant();
}
