using System.Text;
using System.Text.RegularExpressions;

namespace Consort.Evaluation;

/// <summary>
/// <c>f1_match</c>: items with <c>input</c> and <c>output</c> (a gold string or a list of them). Scores token F1
/// after SQuAD-style normalization (max over golds); also reports "contains" (a normalized gold occurs in the
/// answer) and "exact". The main score is F1 unless the task option "metric" names "contains" or "exact".
/// </summary>
public sealed partial class F1MatchTask : IEvalTaskType
{
    private readonly string _metric;

    /// <summary>Creates the task type with the main metric ("f1", "contains" or "exact").</summary>
    public F1MatchTask(string metric = "f1")
    {
        if (metric is not ("f1" or "contains" or "exact"))
            throw new ConfigException($"task type f1_match: unknown metric '{metric}'; valid: f1, contains, exact");
        _metric = metric;
    }

    /// <inheritdoc />
    public string Name => "f1_match";
    /// <inheritdoc />
    public int DefaultMaxTokens => 64;
    /// <inheritdoc />
    public string DefaultPrompt => "{input}\n\nAnswer with a short phrase only.";

    /// <inheritdoc />
    public void Validate(EvalItem item)
    {
        if (item.Input is null && item.Question is null)
            throw new ConsortException($"{item.File}: item {Limits.ForMessage(item.Id)}: missing field 'input'");
        if (item.GoldList.Count == 0)
            throw new ConsortException($"{item.File}: item {Limits.ForMessage(item.Id)}: missing field 'output' (gold string or list)");
    }

    /// <inheritdoc />
    public bool LacksGold(EvalItem item) => item.Fields.ContainsKey("output") && item.Output is null;

    /// <inheritdoc />
    public string Gold(EvalItem item) => item.GoldList[0];

    /// <inheritdoc />
    public ItemScore Score(EvalItem item, string output)
    {
        var answer = ExtractAnswer(output);
        double f1 = 0, contains = 0, exact = 0;
        var normAnswer = NormalizeSquad(answer);
        var normOutput = NormalizeSquad(output);
        foreach (var gold in item.GoldList)
        {
            var g = NormalizeSquad(gold);
            f1 = Math.Max(f1, TokenF1(normAnswer, g));
            if (g.Length > 0 && ContainsWords(normOutput, g)) contains = 1;
            if (normAnswer == g) exact = 1;
        }
        var metrics = new Dictionary<string, double> { ["f1"] = f1, ["contains"] = contains, ["exact"] = exact };
        return new ItemScore(metrics[_metric], normAnswer, metrics);
    }

    /// <inheritdoc />
    public string NormalizeAnswer(string output, EvalItem? item = null) => NormalizeSquad(ExtractAnswer(output));

    /// <summary>Token F1 of two normalized strings (SQuAD definition: bag-of-words overlap).</summary>
    public static double TokenF1(string predicted, string gold)
    {
        var p = predicted.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var g = gold.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (p.Length == 0 || g.Length == 0) return p.Length == g.Length ? 1 : 0;
        var counts = g.GroupBy(t => t).ToDictionary(x => x.Key, x => x.Count());
        int common = 0;
        foreach (var t in p)
        {
            if (counts.TryGetValue(t, out var c) && c > 0) { common++; counts[t] = c - 1; }
        }
        if (common == 0) return 0;
        double precision = (double)common / p.Length, recall = (double)common / g.Length;
        return 2 * precision * recall / (precision + recall);
    }

    /// <summary>SQuAD normalization: lower case, no punctuation, no articles (a, an, the), single spaces.</summary>
    public static string NormalizeSquad(string text)
    {
        var sb = new StringBuilder(text.Length);
        foreach (var ch in text.ToLowerInvariant())
        {
            if (!char.IsPunctuation(ch) && !char.IsSymbol(ch)) sb.Append(ch); // removed, not spaced, as SQuAD does
        }
        var noArticles = Articles().Replace(sb.ToString(), " ");
        return string.Join(' ', noArticles.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
    }

    // The answer part of an output: after an "Answer:" marker if any, else its first non-empty line.
    private static string ExtractAnswer(string output)
    {
        Match? marker = null;
        foreach (Match m in Marker().Matches(output)) marker = m;
        var text = marker is not null && marker.Groups["a"].Value.Trim().Length > 0 ? marker.Groups["a"].Value : output;
        return text.Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.Length > 0) ?? "";
    }

    private static bool ContainsWords(string haystack, string needle) =>
        $" {haystack} ".Contains($" {needle} ", StringComparison.Ordinal);

    [GeneratedRegex(@"\b(a|an|the)\b")]
    private static partial Regex Articles();

    [GeneratedRegex(@"(?:final\s+answer|answer)\s*(?:is|:)\s*(?<a>[^\n]*)", RegexOptions.IgnoreCase)]
    private static partial Regex Marker();
}
