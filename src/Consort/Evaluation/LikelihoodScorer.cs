using System.Text;

namespace Consort.Evaluation;

/// <summary>One choice's log-likelihood as a continuation of the prompt.</summary>
/// <param name="Letter">The choice letter.</param>
/// <param name="Continuation">The text scored (" text" or " A").</param>
/// <param name="LogLikelihood">Sum of the continuation tokens' log-probabilities.</param>
/// <param name="Tokens">Continuation length in tokens.</param>
/// <param name="Bytes">Continuation length in UTF-8 bytes (the acc_norm denominator).</param>
public sealed record ChoiceLikelihood(string Letter, string Continuation, double LogLikelihood, int Tokens, int Bytes);

/// <summary>The outcome of likelihood scoring one item.</summary>
/// <param name="Score">acc as the main score, with acc and acc_norm metrics; Extracted is the letter picked by acc.</param>
/// <param name="Choices">Per-choice likelihoods.</param>
/// <param name="TokensScored">Prompt plus continuation tokens over all choices.</param>
public sealed record LikelihoodResult(ItemScore Score, IReadOnlyList<ChoiceLikelihood> Choices, long TokensScored);

/// <summary>
/// Multiple-choice scoring for base models, as lm-evaluation-harness does it: each choice is scored as a
/// continuation of the prompt with <see cref="ITokenModel.ScoreAsync"/>; "acc" picks the highest summed
/// log-probability, "acc_norm" the highest per byte of continuation.
/// </summary>
public static class LikelihoodScorer
{
    /// <summary>Scores every choice of <paramref name="item"/> after <paramref name="prompt"/>.</summary>
    /// <param name="model">Token access to the model.</param>
    /// <param name="prompt">Prompt text (no chat template: base models).</param>
    /// <param name="item">A multiple-choice item.</param>
    /// <param name="letterForm">Score " A", " B"... instead of the choice texts.</param>
    /// <param name="cancellationToken">Cancels scoring.</param>
    public static async Task<LikelihoodResult> ScoreAsync(ITokenModel model, string prompt, EvalItem item, bool letterForm,
        CancellationToken cancellationToken = default)
    {
        var choices = item.Choices;
        if (choices.Count == 0) throw new ConsortException($"{item}: likelihood scoring needs 'choices'");
        var tok = model.Tokenizer;
        bool bos = tok.Bos is not null;
        var promptTokens = tok.Encode(prompt, addBos: bos);
        if (promptTokens.Length == 0) throw new ConsortException($"{item}: the prompt is empty after tokenization (model '{model.Descriptor.Name}')");
        var results = new List<ChoiceLikelihood>(choices.Count);
        long scored = 0;
        foreach (var (letter, text) in choices)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var continuation = " " + (letterForm ? letter : text.Trim());
            var contTokens = ContinuationTokens(tok, prompt, continuation, promptTokens, bos);
            if (contTokens.Length == 0) throw new ConsortException($"{item}: choice {letter} is empty after tokenization");
            var lps = await model.ScoreAsync(promptTokens, contTokens, cancellationToken).ConfigureAwait(false);
            double sum = 0;
            foreach (var lp in lps) sum += lp;
            results.Add(new ChoiceLikelihood(letter, continuation, sum, contTokens.Length, Encoding.UTF8.GetByteCount(continuation)));
            scored += promptTokens.Length + contTokens.Length;
        }
        var gold = item.Answer?.Trim().ToUpperInvariant();
        var best = results.MaxBy(r => r.LogLikelihood)!;
        var bestNorm = results.MaxBy(r => r.LogLikelihood / Math.Max(1, r.Bytes))!;
        double acc = best.Letter.ToUpperInvariant() == gold ? 1 : 0;
        double accNorm = bestNorm.Letter.ToUpperInvariant() == gold ? 1 : 0;
        var score = new ItemScore(acc, best.Letter.ToUpperInvariant(), new Dictionary<string, double> { ["acc"] = acc, ["acc_norm"] = accNorm });
        return new LikelihoodResult(score, results, scored);
    }

    // Tokenize prompt+continuation together and take the tail, so the boundary tokenizes as in running text;
    // fall back to tokenizing the continuation alone where the prompt's tokens are not a prefix.
    private static int[] ContinuationTokens(ITokenizer tok, string prompt, string continuation, int[] promptTokens, bool bos)
    {
        var whole = tok.Encode(prompt + continuation, addBos: bos);
        if (whole.Length > promptTokens.Length && whole.AsSpan(0, promptTokens.Length).SequenceEqual(promptTokens))
            return whole[promptTokens.Length..];
        return tok.Encode(continuation, addBos: false);
    }
}
