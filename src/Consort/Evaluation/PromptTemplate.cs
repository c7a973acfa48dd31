using System.Text.RegularExpressions;

namespace Consort.Evaluation;

/// <summary>
/// Fills a prompt template from an item. Placeholders: <c>{input}</c> (the input, or the question),
/// <c>{question}</c> (the question, or the input), <c>{choices}</c> (lettered lines "A. text"; empty when the
/// question already lists them), and <c>{field}</c> for any other item field. Braces that name nothing
/// (e.g. LaTeX "\boxed{}") are left as they are.
/// </summary>
public static partial class PromptTemplate
{
    /// <summary>Renders <paramref name="template"/> for <paramref name="item"/>.</summary>
    public static string Render(string template, EvalItem item)
    {
        bool choicesInQuestion = MultipleChoiceTask.QuestionListsChoices(item);
        var text = Placeholder().Replace(template, m =>
        {
            var name = m.Groups[1].Value;
            return name switch
            {
                "input" => item.Input ?? item.Question ?? m.Value,
                "question" => item.Question ?? item.Input ?? m.Value,
                "choices" => choicesInQuestion ? "" : MultipleChoiceTask.FormatChoices(item),
                _ => item.Fields.ContainsKey(name) ? item.GetString(name) ?? "" : m.Value,
            };
        });
        // An emptied {choices} leaves blank lines behind.
        return choicesInQuestion ? BlankRuns().Replace(text, "\n\n").Trim() : text;
    }

    [GeneratedRegex(@"\{([A-Za-z_][A-Za-z0-9_]*)\}")]
    private static partial Regex Placeholder();

    [GeneratedRegex(@"\n{3,}")]
    private static partial Regex BlankRuns();
}
