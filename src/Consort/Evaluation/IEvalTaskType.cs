namespace Consort.Evaluation;

/// <summary>The score of one output.</summary>
/// <param name="Score">Main score in [0, 1].</param>
/// <param name="Extracted">The answer read out of the output (normalized), or null when none was found.</param>
/// <param name="Metrics">Further per-item metrics (e.g. "contains", "acc_norm"); summaries average each.</param>
public sealed record ItemScore(double Score, string? Extracted, IReadOnlyDictionary<string, double>? Metrics = null);

/// <summary>
/// A task type (multiple_choice, exact_match, f1_match, ...): which item fields it needs, how it prompts,
/// how it reads an answer out of an output and how it scores it. One file per task type; see <see cref="EvalTaskTypes"/>.
/// </summary>
public interface IEvalTaskType
{
    /// <summary>Name in dataset files and task configs.</summary>
    string Name { get; }
    /// <summary>Default generation budget.</summary>
    int DefaultMaxTokens { get; }
    /// <summary>Default prompt template (placeholders as in <see cref="PromptTemplate"/>).</summary>
    string DefaultPrompt { get; }
    /// <summary>Checks that the item has the fields this type needs.</summary>
    /// <exception cref="ConsortException">Names the file, item id and field.</exception>
    void Validate(EvalItem item);
    /// <summary>
    /// True when the item is well formed but has no gold to score against (a few math items have
    /// <c>"output": null</c>): such items are skipped and counted, not an error.
    /// </summary>
    bool LacksGold(EvalItem item);
    /// <summary>The gold answer as text, for results and fit examples.</summary>
    string Gold(EvalItem item);
    /// <summary>Scores a model output against the item's gold.</summary>
    ItemScore Score(EvalItem item, string output);
    /// <summary>The normalized final answer of an output, so that equal answers compare equal (majority voting).</summary>
    /// <param name="output">Model output.</param>
    /// <param name="item">The item, when known (multiple choice uses its letters).</param>
    string NormalizeAnswer(string output, EvalItem? item = null);
}
