namespace Consort.Training.Skills;

/// <summary>
/// The plain-text formats the zoo's team models are trained on: how a collaboration method's roles (write knowledge, answer
/// from knowledge or from other members' answers, pick the best candidate, choose a blackboard action) look to a model of
/// 128 bytes of context. Every format ends with the task's own question (<c>Q: ... A:</c>), so the answer still follows
/// <c>A:</c> and the task's extraction and scoring apply unchanged. The zoo build writes these as role prompt templates
/// (<c>zoo/prompts.json</c>) for the text-level methods.
/// </summary>
public static class ZooDialect
{
    /// <summary>
    /// What a team model says when it does not know (as an answer, a knowledge card or a candidate). A dash, not a word: in a
    /// list of answers the one real answer then stands out, which a model this small learns to read far sooner (measured).
    /// </summary>
    public const string Unknown = "-";
    /// <summary>Joins the items of a list (knowledge cards, candidate answers, blackboard entries).</summary>
    public const string Separator = " | ";
    /// <summary>Blackboard action: add an answer to the board.</summary>
    public const string Execute = "execute";
    /// <summary>Blackboard action: the board holds an answer; stop and conclude.</summary>
    public const string Terminate = "terminate";

    /// <summary>Ask for knowledge about a question: answered with a sentence (<c>Bexor lives in Tulmar.</c>) or <see cref="Unknown"/>.</summary>
    public static string Knowledge(string input) => "Fact? " + input;

    /// <summary>A question with knowledge cards in context.</summary>
    public static string WithKnowledge(IEnumerable<string> cards, string input) => "Knowledge: " + string.Join(Separator, cards) + "\n" + input;

    /// <summary>A question with other answers (candidates, earlier rounds, blackboard entries) in context.</summary>
    public static string WithAnswers(IEnumerable<string> answers, string input) => "Answers: " + string.Join(Separator, answers) + "\n" + input;

    /// <summary>Pick the best of numbered candidates: answered with the number (1-based). Pairwise ranking is the two-item case.</summary>
    public static string Pick(IEnumerable<string> answers, string input) =>
        "Best? " + string.Join(Separator, answers.Select((a, i) => $"{i + 1}: {a}")) + "\n" + input;

    /// <summary>Choose a blackboard action given the board's entries: <see cref="Execute"/> or <see cref="Terminate"/>.</summary>
    public static string Act(IEnumerable<string> board, string input) => "Act? " + string.Join(Separator, board) + "\n" + input;

    /// <summary>
    /// The knowledge sentence for an answer: the answer first (where the expert's recall of the fact happens, as for a plain
    /// answer), then what it is: <c>Tulmar is the answer.</c>, <c>55 is the answer.</c>
    /// </summary>
    public static string Sentence(string answer) => answer + " is the answer.";
}
