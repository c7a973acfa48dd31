using System.Text.RegularExpressions;
using Microsoft.Extensions.AI;

namespace Consort;

/// <summary>
/// How to read the final answer out of an output, so that voting, ranking and agreement compare answers, not
/// wording. It belongs to the task (a multiple-choice task reads a letter, a math task a number): the evaluator
/// attaches one per request to the chat options, and a method's context holds the task's default for calls that
/// carry none (server requests, fitting). <see cref="Instruction"/> tells role prompts how the answer must look.
/// </summary>
public partial class AnswerExtractor(Func<string, string> normalize, string? instruction = null)
{
    private readonly Func<string, string> _normalize = normalize;

    /// <summary>First line, trimmed, lower-cased, inner whitespace collapsed, trailing punctuation removed.</summary>
    public static AnswerExtractor Generic { get; } = new(GenericNormalize);

    /// <summary>The normalized final answer of an output (equal answers compare equal).</summary>
    public string Normalize(string output) => _normalize(output ?? "");

    /// <summary>How the answer must be written (e.g. "Answer with the letter of the correct choice."), or null.</summary>
    public string? Instruction { get; } = instruction;

    /// <summary>The extractor a request carries, else <paramref name="fallback"/>, else <see cref="Generic"/>.</summary>
    public static AnswerExtractor From(ChatOptions? options, AnswerExtractor? fallback = null) =>
        options?.AdditionalProperties?.TryGetValue(ConsortKeys.AnswerExtractor, out var v) == true && v is AnswerExtractor a ? a : fallback ?? Generic;

    /// <summary>Options carrying this extractor (a copy; the input is not changed).</summary>
    public ChatOptions AttachTo(ChatOptions? options)
    {
        var o = options?.Clone() ?? new ChatOptions();
        o.AdditionalProperties ??= new();
        o.AdditionalProperties[ConsortKeys.AnswerExtractor] = this;
        return o;
    }

    /// <summary>The generic normalization.</summary>
    public static string GenericNormalize(string text)
    {
        var line = (text ?? "").Trim().Split('\n', 2)[0];
        line = Spaces().Replace(line.Trim().ToLowerInvariant(), " ");
        return line.TrimEnd('.', '!', '?', ',', ';', ':').Trim();
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Spaces();
}
