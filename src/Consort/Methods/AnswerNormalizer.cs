using System.Text.RegularExpressions;
using Microsoft.Extensions.AI;

namespace Consort.Methods;

/// <summary>
/// Normalizes answers so that votes count equal answers together. The evaluator passes the task's
/// own normalizer through <see cref="ChatOptions.AdditionalProperties"/>; otherwise a generic one is used.
/// </summary>
public static partial class AnswerNormalizer
{
    /// <summary>Key of a <c>Func&lt;string, string&gt;</c> in <see cref="ChatOptions.AdditionalProperties"/>.</summary>
    public const string OptionsKey = "consort.normalize_answer";

    /// <summary>The normalizer the caller passed, or <see cref="Generic"/>.</summary>
    public static Func<string, string> From(ChatOptions? options) =>
        options?.AdditionalProperties?.TryGetValue(OptionsKey, out var v) == true && v is Func<string, string> f ? f : Generic;

    /// <summary>Returns options carrying <paramref name="normalizer"/> (a copy).</summary>
    public static ChatOptions With(ChatOptions? options, Func<string, string> normalizer)
    {
        var o = options?.Clone() ?? new ChatOptions();
        o.AdditionalProperties ??= new();
        o.AdditionalProperties[OptionsKey] = normalizer;
        return o;
    }

    /// <summary>First line, trimmed, lower-cased, inner whitespace collapsed, trailing punctuation removed.</summary>
    public static string Generic(string text)
    {
        var line = text.Trim().Split('\n', 2)[0];
        line = Spaces().Replace(line.Trim().ToLowerInvariant(), " ");
        return line.TrimEnd('.', '!', '?', ',', ';', ':').Trim();
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Spaces();
}
