using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace Consort.Evaluation;

/// <summary>JSON settings of the evaluation files: snake_case, readable text (no \u escapes of quotes or non-ASCII).</summary>
public static class EvalJson
{
    /// <summary>Compact options (results.jsonl).</summary>
    public static JsonSerializerOptions Options { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        TypeInfoResolver = new DefaultJsonTypeInfoResolver(),
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>Indented options (summary.json, run.json).</summary>
    public static JsonSerializerOptions Indented { get; } = new(Options) { WriteIndented = true };
}
