using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Consort.Evaluation;

/// <summary>
/// One dataset item: every field of the JSON object is kept in <see cref="Fields"/>; the typed accessors
/// read the common ones (<c>id</c>, <c>question</c>, <c>input</c>, <c>choices</c>, <c>answer</c>, <c>output</c>).
/// </summary>
public sealed class EvalItem
{
    /// <summary>Wraps an item read from <paramref name="file"/>.</summary>
    /// <param name="fields">The item object.</param>
    /// <param name="key">Unique key within the split (the id, suffixed "#2", "#3"... where ids repeat).</param>
    /// <param name="index">Position in the split.</param>
    /// <param name="file">Dataset file, for messages.</param>
    public EvalItem(JsonObject fields, string key, int index, string file)
    {
        Fields = fields; Key = key; Index = index; File = file;
    }

    /// <summary>All fields as read.</summary>
    public JsonObject Fields { get; }
    /// <summary>Unique key within the split; results and resume use it.</summary>
    public string Key { get; }
    /// <summary>Position in the split.</summary>
    public int Index { get; }
    /// <summary>The dataset file.</summary>
    public string File { get; }

    /// <summary>The <c>id</c> field as text (the index when absent).</summary>
    public string Id => TextOf(Fields["id"]) ?? Index.ToString(CultureInfo.InvariantCulture);
    /// <summary>The <c>question</c> field (multiple choice).</summary>
    public string? Question => GetString("question");
    /// <summary>The <c>input</c> field (generation tasks).</summary>
    public string? Input => GetString("input");
    /// <summary>The <c>answer</c> field (a letter, multiple choice).</summary>
    public string? Answer => GetString("answer");
    /// <summary>The raw <c>output</c> field (gold for generation tasks).</summary>
    public JsonNode? Output => Fields["output"];

    /// <summary>Choices in file order (letter, text); empty when the item has none.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Choices
    {
        get
        {
            if (Fields["choices"] is JsonObject o)
                return o.Select(kv => new KeyValuePair<string, string>(kv.Key.Trim(), TextOf(kv.Value) ?? "")).ToList();
            if (Fields["choices"] is JsonArray a) // a plain list: letters A, B, C... by position
                return a.Select((v, i) => new KeyValuePair<string, string>(((char)('A' + i)).ToString(), TextOf(v) ?? "")).ToList();
            return [];
        }
    }

    /// <summary>
    /// Gold answers: the <c>output</c> field as a list. A JSON array, or a string holding a JSON array
    /// (popqa stores lists that way), gives several golds; anything else gives one.
    /// </summary>
    public IReadOnlyList<string> GoldList
    {
        get
        {
            var node = Output;
            if (node is null) return [];
            if (node is JsonArray arr) return arr.Select(TextOf).Where(s => s is not null).Select(s => s!).ToList();
            var text = TextOf(node)!;
            var t = text.TrimStart();
            if (t.StartsWith('[') && t.TrimEnd().EndsWith(']'))
            {
                try
                {
                    if (JsonNode.Parse(t) is JsonArray inner && inner.Count > 0 && inner.All(x => x is JsonValue v && v.GetValueKind() == JsonValueKind.String))
                        return inner.Select(x => x!.GetValue<string>()).ToList();
                }
                catch (JsonException) { } // not JSON: a literal answer such as "[1, 0, 1]"
            }
            return [text];
        }
    }

    /// <summary>A field as text (numbers and booleans in invariant form); null when absent or null.</summary>
    public string? GetString(string field) => TextOf(Fields[field]);

    /// <summary>JSON scalar as text; arrays/objects as compact JSON.</summary>
    internal static string? TextOf(JsonNode? node) => node switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        JsonValue v => v.ToJsonString(),
        _ => node.ToJsonString(),
    };

    /// <inheritdoc />
    public override string ToString() => $"{Path.GetFileName(File)} item {Key}";
}
