using System.Text.Json;
using System.Text.Json.Nodes;

namespace Consort.Evaluation;

/// <summary>
/// A dataset's plain completion prompt for base models (no chat template): the template, a generation budget and
/// stop sequences, e.g. <c>{"prompt": "{input}", "max_tokens": 16, "stop": ["\n"]}</c> for the zoo's
/// "Q: 7+48= A:" questions, which a base model continues rather than follows as an instruction.
/// </summary>
/// <param name="Prompt">Prompt template (placeholders as in <see cref="PromptTemplate"/>).</param>
/// <param name="MaxTokens">Generation budget, if declared.</param>
/// <param name="Stop">Stop sequences.</param>
public sealed record CompletionPrompt(string Prompt, int? MaxTokens, IReadOnlyList<string> Stop)
{
    /// <summary>Reads the dataset's <c>"completion"</c> object; null when absent.</summary>
    /// <exception cref="ConsortException">A malformed object (file and field named).</exception>
    public static CompletionPrompt? Parse(JsonNode? node, string file)
    {
        if (node is null) return null;
        if (node is not JsonObject o || o["prompt"] is not JsonValue pv || !pv.TryGetValue<string>(out var prompt))
            throw new ConsortException($"{file}: \"completion\" must be an object with a \"prompt\" string");
        try
        {
            int? max = o["max_tokens"]?.GetValue<int>();
            if (max is <= 0) throw new ConsortException($"{file}: completion.max_tokens must be positive, got {max}");
            IReadOnlyList<string> stop = o["stop"] switch
            {
                null => [],
                JsonValue s => [s.GetValue<string>()],
                var a => a.Deserialize<string[]>() ?? [],
            };
            return new CompletionPrompt(prompt, max, stop);
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            throw new ConsortException($"{file}: \"completion\" has a field of the wrong type ({e.Message})", e);
        }
    }
}
