namespace Consort.Evaluation;

/// <summary>
/// <c>exact_match</c>: items with <c>input</c> and <c>output</c> (gold). The final answer is read out of the
/// output (<see cref="AnswerText.ExtractFinal"/>) and compared after normalization, numerically where both parse.
/// </summary>
public sealed class ExactMatchTask : IEvalTaskType
{
    /// <inheritdoc />
    public string Name => "exact_match";
    /// <inheritdoc />
    public int DefaultMaxTokens => 512;
    /// <inheritdoc />
    public string DefaultPrompt => "{input}\n\nEnd your reply with a line \"Answer: <final answer>\".";

    /// <inheritdoc />
    public void Validate(EvalItem item)
    {
        if (item.Input is null && item.Question is null)
            throw new ConsortException($"{item.File}: item {Limits.ForMessage(item.Id)}: missing field 'input'");
        if (item.GoldList.Count == 0)
            throw new ConsortException($"{item.File}: item {Limits.ForMessage(item.Id)}: missing field 'output' (the gold answer)");
    }

    /// <inheritdoc />
    public bool LacksGold(EvalItem item) => item.Fields.ContainsKey("output") && item.Output is null;

    /// <inheritdoc />
    public string Gold(EvalItem item) => item.GoldList[0];

    /// <inheritdoc />
    public ItemScore Score(EvalItem item, string output)
    {
        var final = AnswerText.ExtractFinal(output);
        var extracted = AnswerText.Normalize(final);
        bool correct = item.GoldList.Any(g => AnswerText.Equivalent(final, g));
        if (!correct && item.GoldList.Any(g => AnswerText.TryParseNumber(g, out _)) && !AnswerText.TryParseNumber(final, out _))
        {
            // A numeric gold and a wordy final answer ("112 dollars"): compare the last number in it.
            var n = AnswerText.LastNumber(final);
            if (n is not null && item.GoldList.Any(g => AnswerText.Equivalent(n, g)))
            {
                correct = true;
                extracted = AnswerText.Normalize(n);
            }
        }
        return new ItemScore(correct ? 1 : 0, extracted);
    }

    /// <inheritdoc />
    public string NormalizeAnswer(string output, EvalItem? item = null)
    {
        var norm = AnswerText.ExtractNormalized(output);
        // Equal numbers written differently ("0.75", "3/4") should vote together.
        return AnswerText.TryParseNumber(norm, out var v) ? v.ToString("R", System.Globalization.CultureInfo.InvariantCulture) : norm;
    }
}
