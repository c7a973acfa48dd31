using System.Text;
using System.Text.RegularExpressions;

namespace Consort.Evaluation;

/// <summary>
/// <c>multiple_choice</c>: items with <c>question</c>, <c>choices</c> (letter -> text) and <c>answer</c> (letter).
/// Generated outputs are scored on the letter read out of them (<see cref="ExtractLetter"/>); likelihood
/// scoring (for base models) is done by <see cref="LikelihoodScorer"/>.
/// </summary>
public sealed partial class MultipleChoiceTask : IEvalTaskType
{
    /// <inheritdoc />
    public string Name => "multiple_choice";
    /// <inheritdoc />
    public int DefaultMaxTokens => 256;
    /// <inheritdoc />
    public string DefaultPrompt => "{question}\n\n{choices}\n\nAnswer with the letter of the correct choice.";

    /// <inheritdoc />
    public void Validate(EvalItem item)
    {
        if (string.IsNullOrWhiteSpace(item.Question))
            throw new ConsortException($"{item.File}: item {Limits.ForMessage(item.Id)}: missing field 'question'");
        var choices = item.Choices;
        if (choices.Count == 0)
            throw new ConsortException($"{item.File}: item {Limits.ForMessage(item.Id)}: missing field 'choices' (an object letter -> text)");
        var answer = item.Answer?.Trim();
        if (string.IsNullOrEmpty(answer))
            throw new ConsortException($"{item.File}: item {Limits.ForMessage(item.Id)}: missing field 'answer'");
        if (!choices.Any(c => string.Equals(c.Key, answer, StringComparison.OrdinalIgnoreCase)))
            throw new ConsortException($"{item.File}: item {Limits.ForMessage(item.Id)}: field 'answer' is '{Limits.ForMessage(answer)}', not one of the choices {Limits.ForMessage(string.Join(", ", choices.Select(c => c.Key)))}");
    }

    /// <inheritdoc />
    public bool LacksGold(EvalItem item) => false; // a missing answer is a malformed item

    /// <inheritdoc />
    public string Gold(EvalItem item) => item.Answer!.Trim().ToUpperInvariant();

    /// <inheritdoc />
    public ItemScore Score(EvalItem item, string output)
    {
        var letter = ExtractLetter(output, item.Choices.Select(c => c.Key).ToList());
        return new ItemScore(letter is not null && letter == Gold(item) ? 1 : 0, letter);
    }

    /// <inheritdoc />
    public string NormalizeAnswer(string output, EvalItem? item = null) =>
        ExtractLetter(output, item?.Choices.Select(c => c.Key).ToList()) ?? output.Trim().ToLowerInvariant();

    /// <summary>Renders choices one per line: "A. text".</summary>
    public static string FormatChoices(EvalItem item)
    {
        var sb = new StringBuilder();
        foreach (var (letter, text) in item.Choices)
        {
            if (sb.Length > 0) sb.Append('\n');
            sb.Append(letter).Append(". ").Append(text);
        }
        return sb.ToString();
    }

    /// <summary>True when the question text already lists the choices (some files embed them), so prompts don't repeat them.</summary>
    public static bool QuestionListsChoices(EvalItem item)
    {
        var q = item.Question ?? "";
        return item.Choices.Count > 0 && item.Choices.All(c =>
            q.Contains($"{c.Key}. {c.Value}", StringComparison.Ordinal) || q.Contains($"({c.Key}) {c.Value}", StringComparison.Ordinal));
    }

    /// <summary>
    /// Reads the chosen letter out of free text. In order of trust: an explicit "answer is X" / "answer: X"
    /// (last one wins), a phrase such as "it's X" / "option X" / "choose X", a lone letter at the start
    /// ("B.", "(B)", "**C**"), then the last standalone capital letter among the valid ones.
    /// </summary>
    /// <param name="output">Model output.</param>
    /// <param name="validLetters">The item's letters; null means A-Z.</param>
    /// <returns>The upper-case letter, or null when none is found.</returns>
    public static string? ExtractLetter(string output, IReadOnlyCollection<string>? validLetters)
    {
        if (string.IsNullOrWhiteSpace(output)) return null;
        var valid = new HashSet<string>((validLetters ?? []).Select(l => l.Trim().ToUpperInvariant()));
        bool IsValid(string l) => valid.Count == 0 ? l.Length == 1 && char.IsAsciiLetterUpper(l[0]) : valid.Contains(l);
        var text = output.Replace("*", "").Replace("_", " ");

        string? LastValid(Regex re)
        {
            string? found = null;
            foreach (Match m in re.Matches(text))
            {
                var l = m.Groups["l"].Value;
                // A lower-case letter counts only when punctuation or the end follows ("answer: d"), not a word ("answer is a bit").
                if (char.IsLower(l[0]) && m.Groups["after"].Value.Length > 0 && char.IsWhiteSpace(m.Groups["after"].Value[0])) continue;
                var up = l.ToUpperInvariant();
                if (IsValid(up)) found = up;
            }
            return found;
        }

        var explicitAnswer = LastValid(AnswerIs());
        if (explicitAnswer is not null) return explicitAnswer;
        var phrase = LastValid(Phrase());
        if (phrase is not null) return phrase;

        var start = LeadingLetter().Match(text);
        if (start.Success)
        {
            var l = start.Groups["l"].Value;
            var a = start.Groups["after"].Value;
            bool space = a.Length > 0 && char.IsWhiteSpace(a[0]);
            // "A cat..." / "I think..." are words, and a lower-case letter counts only before punctuation ("b)") or alone.
            bool wordLike = space && (l is "A" or "I" || char.IsLower(l[0]));
            if (!wordLike && IsValid(l.ToUpperInvariant())) return l.ToUpperInvariant();
        }

        string? last = null;
        foreach (Match m in StandaloneCapital().Matches(text))
        {
            if (IsValid(m.Value)) last = m.Value;
        }
        return last;
    }

    // "answer is (B)", "answer: d", "Answer - C", "correct answer would be B", "final answer is option C".
    [GeneratedRegex(@"answer\s*(?:is|would\s+be|should\s+be|:|-|=)?\s*(?:option|choice|letter)?\s*[:\(\[\{""']?\s*(?<l>[A-Za-z])(?<after>[\)\]\}""'.,:;!?\s]|$)", RegexOptions.IgnoreCase)]
    private static partial Regex AnswerIs();

    // "it's B", "it is (C)", "option D", "choose A", "I'd pick B", "go with C" — capital letters only (avoid "it is a").
    [GeneratedRegex(@"(?:\bit['’]?s|\bit\s+is|\boption|\bchoice|\bchoose|\bselect|\bpick|\bgo\s+with)\s*[:\(\[]?\s*(?<l>[A-Z])(?<after>[\)\]\.,:;!?\s]|$)")]
    private static partial Regex Phrase();

    // A letter alone at the start: "B", "B.", "(B)", "B)", "C: ...".
    [GeneratedRegex(@"^\s*[\(\[]?(?<l>[A-Za-z])(?<after>[\)\]\.:,]|\s|$)")]
    private static partial Regex LeadingLetter();

    [GeneratedRegex(@"(?<![A-Za-z0-9'])[A-Z](?![A-Za-z0-9'])")]
    private static partial Regex StandaloneCapital();
}
