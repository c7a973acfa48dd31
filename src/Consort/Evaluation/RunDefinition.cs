using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Consort.Evaluation;

/// <summary>
/// Everything that determines a run's results, as named parts (method, options, models with file digests, task with
/// the dataset digest, prompts, split, seed) and one digest over them. run.json records it; a rerun into the same
/// folder resumes only when the digest matches, else it is refused naming the parts that changed. Item limits,
/// concurrency and shards are not part of it: they choose which items run, not what an item's result is.
/// </summary>
public sealed class RunDefinition
{
    private readonly SortedDictionary<string, JsonNode?> _parts;

    private RunDefinition(SortedDictionary<string, JsonNode?> parts)
    {
        _parts = parts;
        Digest = Hash(string.Join("\n", parts.Select(kv => kv.Key + "=" + Canonical(kv.Value))));
    }

    /// <summary>The parts, by name.</summary>
    public IReadOnlyDictionary<string, JsonNode?> Parts => _parts;
    /// <summary>Hex SHA-256 over the canonical parts.</summary>
    public string Digest { get; }

    /// <summary>A definition of the given parts (values are copied).</summary>
    public static RunDefinition Of(IEnumerable<KeyValuePair<string, JsonNode?>> parts)
    {
        var d = new SortedDictionary<string, JsonNode?>(StringComparer.Ordinal);
        foreach (var (k, v) in parts) d[k] = v?.DeepClone();
        return new RunDefinition(d);
    }

    /// <summary>This definition with one more part (or one replaced).</summary>
    public RunDefinition With(string part, JsonNode? value) =>
        Of(_parts.Where(kv => kv.Key != part).Append(KeyValuePair.Create(part, value)));

    /// <summary>How <paramref name="newer"/> differs from this one, one entry per changed part ("options: {...} -> {...}"); empty when equal.</summary>
    public IReadOnlyList<string> Changes(RunDefinition newer)
    {
        var changes = new List<string>();
        foreach (var name in _parts.Keys.Union(newer._parts.Keys).Order(StringComparer.Ordinal))
        {
            string before = _parts.TryGetValue(name, out var a) ? Canonical(a) : "(none)";
            string after = newer._parts.TryGetValue(name, out var b) ? Canonical(b) : "(none)";
            if (before != after) changes.Add($"{name} changed: {Difference(before, after)}");
        }
        return changes;
    }

    // Long values (model trees) differ in a small place: show the first differing stretch of each.
    private static string Difference(string before, string after)
    {
        const int Max = 160;
        if (before.Length <= Max && after.Length <= Max) return $"{before} -> {after}";
        int start = 0;
        while (start < before.Length && start < after.Length && before[start] == after[start]) start++;
        start = Math.Max(0, start - 40);
        string Cut(string s) => (start > 0 ? "..." : "") + (s.Length - start > Max ? s.Substring(Math.Min(start, s.Length), Max) + "..." : s[Math.Min(start, s.Length)..]);
        return $"{Cut(before)} -> {Cut(after)}";
    }

    /// <summary>The JSON form in run.json: <c>{"digest": ..., "parts": {...}}</c>.</summary>
    public JsonObject ToJson() => new()
    {
        ["digest"] = Digest,
        ["parts"] = new JsonObject(_parts.Select(kv => KeyValuePair.Create(kv.Key, kv.Value?.DeepClone()))),
    };

    /// <summary>Reads the JSON form; null when absent or not an object.</summary>
    public static RunDefinition? FromJson(JsonNode? node) =>
        node is JsonObject o && o["parts"] is JsonObject parts ? Of(parts.Select(kv => KeyValuePair.Create(kv.Key, kv.Value))) : null;

    /// <summary>Canonical JSON text: object keys sorted, no whitespace.</summary>
    public static string Canonical(JsonNode? node) => Sorted(node)?.ToJsonString() ?? "null";

    private static JsonNode? Sorted(JsonNode? node) => node switch
    {
        JsonObject o => new JsonObject(o.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => KeyValuePair.Create(kv.Key, Sorted(kv.Value)))),
        JsonArray a => new JsonArray(a.Select(Sorted).ToArray()),
        null => null,
        _ => node.DeepClone(),
    };

    /// <summary>Hex SHA-256 of a text.</summary>
    public static string Hash(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    /// <summary>Hex SHA-256 of a JSON value's canonical form.</summary>
    public static string HashJson(JsonNode? node) => Hash(Canonical(node));

    /// <inheritdoc />
    public override string ToString() => JsonSerializer.Serialize(ToJson());
}
