using System.Text.Json;
using System.Text.Json.Nodes;

namespace Consort.Methods.Api.Routing;

/// <summary>
/// What a saved router belongs to: the members (name and an identity such as a file digest or endpoint model, in
/// order) and the embedding source. A file trained for other members or another embedding is refused.
/// </summary>
/// <param name="Models">Member names, in config order.</param>
/// <param name="ModelIds">One identity per member (what makes "the same model": path digest, endpoint and model name).</param>
/// <param name="Embedding">Embedding source identity (e.g. "minilm:all-MiniLM-L6-v2", "gguf:&lt;digest&gt;").</param>
/// <param name="Settings">Anything else that must match (cost weight, scenario, ...), as text.</param>
public sealed record RouterIdentity(IReadOnlyList<string> Models, IReadOnlyList<string> ModelIds, string Embedding, string Settings = "")
{
    /// <summary>
    /// The identity of members from their descriptors: architecture, size and vocabulary, and for local files the
    /// file name and length (cheap, and changes when the weights do).
    /// </summary>
    public static RouterIdentity For(IReadOnlyList<ModelDescriptor> members, string embedding, string settings = "") =>
        new(members.Select(m => m.Name).ToArray(), members.Select(Id).ToArray(), embedding, settings);

    private static string Id(ModelDescriptor d)
    {
        string file = d.WeightsPath is { } p && File.Exists(p) ? $"{Path.GetFileName(p)}:{new FileInfo(p).Length}" : "remote";
        return $"{d.Architecture ?? "?"}/{d.Parameters?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?"}/{d.Vocabulary?.ToString() ?? "?"}/{file}";
    }

    /// <summary>Why <paramref name="other"/> (from a file) differs, or null when it matches.</summary>
    public string? Mismatch(RouterIdentity other)
    {
        if (!Models.SequenceEqual(other.Models))
            return $"it was trained for models [{string.Join(", ", other.Models)}], the members here are [{string.Join(", ", Models)}]";
        for (int i = 0; i < Models.Count; i++)
            if (ModelIds[i] != other.ModelIds[i])
                return $"its model '{Models[i]}' was {other.ModelIds[i]}, here it is {ModelIds[i]}";
        if (Embedding != other.Embedding) return $"it was trained on embeddings '{other.Embedding}', here '{Embedding}'";
        if (Settings != other.Settings) return $"it was trained with {other.Settings}, here {Settings}";
        return null;
    }
}

/// <summary>Named numbers of a router, stored in its file (float arrays as base64 of little-endian float32).</summary>
internal sealed class RouterState(JsonObject json)
{
    public RouterState() : this(new JsonObject()) { }

    public JsonObject Json => json;

    public void Set(string key, float[] values) => json[key] = Convert.ToBase64String(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
    public void Set(string key, double value) => json[key] = value;
    public void Set(string key, int value) => json[key] = value;

    public float[] Floats(string key, int expected)
    {
        var bytes = Convert.FromBase64String(Get(key).GetValue<string>());
        if (bytes.Length != expected * sizeof(float)) throw new FormatException($"'{key}' holds {bytes.Length / 4} values, expected {expected}");
        var r = new float[expected];
        Buffer.BlockCopy(bytes, 0, r, 0, bytes.Length);
        return r;
    }

    public int Int(string key) => Get(key).GetValue<int>();
    public double Double(string key) => Get(key).GetValue<double>();
    public double? OptionalDouble(string key) => json[key]?.GetValue<double>();
    private JsonNode Get(string key) => json[key] ?? throw new FormatException($"missing '{key}'");
}

/// <summary>
/// Saving and loading trained routers (<c>router_path</c>): one JSON file with the kind, what it belongs to
/// (<see cref="RouterIdentity"/>) and its parameters. Written atomically.
/// </summary>
public static class RouterFile
{
    private const string Format = "consort.router/1";

    /// <summary>Writes <paramref name="router"/> with its <paramref name="identity"/> to <paramref name="path"/>.</summary>
    public static void Save(string path, Router router, RouterIdentity identity)
    {
        var state = new RouterState();
        router.Save(state);
        var json = new JsonObject
        {
            ["format"] = Format,
            ["kind"] = router.Kind,
            ["models"] = new JsonArray(identity.Models.Select(m => (JsonNode)m).ToArray()),
            ["model_ids"] = new JsonArray(identity.ModelIds.Select(m => (JsonNode)m).ToArray()),
            ["embedding"] = identity.Embedding,
            ["settings"] = identity.Settings,
            ["dimension"] = router.Dimension,
            ["strong"] = router.Strong,
            ["state"] = state.Json,
        };
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, json.ToJsonString());
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>
    /// Why a saved router at <paramref name="path"/> cannot serve <paramref name="members"/> with
    /// <paramref name="settings"/> (other members, in another order, other files under the same names, another kind or
    /// cost weight), or null when they match or the file cannot be read (then <see cref="Load"/> says what is wrong
    /// with it). The embedding is checked at load. Cheap: read at validation, before any model loads, so a server or
    /// run pointed at another set-up's router stops with one line instead of after loading every member.
    /// </summary>
    public static string? SetupMismatch(string path, IReadOnlyList<ModelDescriptor> members, string settings)
    {
        RouterIdentity found;
        try
        {
            if (JsonNode.Parse(File.ReadAllText(path)) is not JsonObject json || (string?)json["format"] != Format) return null;
            found = new RouterIdentity(json["models"]!.AsArray().Select(n => n!.GetValue<string>()).ToArray(),
                json["model_ids"]!.AsArray().Select(n => n!.GetValue<string>()).ToArray(), "", (string?)json["settings"] ?? "");
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or NullReferenceException or IOException) { return null; }
        return RouterIdentity.For(members, "", settings).Mismatch(found);
    }

    /// <summary>Refuses, at a method's validation, a <c>router_path</c> that exists but was saved for another set-up
    /// (<see cref="SetupMismatch"/>), with the plan's error naming the method and the hyperparameter.</summary>
    public static void CheckSaved(MethodPlan plan, string routerPath, string settings)
    {
        if (SetupMismatch(Path.GetFullPath(routerPath, plan.BaseDirectory), plan.Members, settings) is { } why)
            throw plan.Error("router_path", $"'{routerPath}' was saved for another set-up: {why}; delete it or point router_path elsewhere to train a new one");
    }

    /// <summary>
    /// Loads a router saved for <paramref name="expected"/>; a file for other members, another embedding or other
    /// settings, or a damaged one, is a <see cref="ConfigException"/> that says which and what to do.
    /// </summary>
    public static Router Load(string path, RouterIdentity expected, string? expectedKind = null)
    {
        JsonObject json;
        try
        {
            json = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new FormatException("not a JSON object");
            if ((string?)json["format"] != Format) throw new FormatException($"format is not {Format}");
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            throw new ConfigException($"router file '{path}' is not a Consort router ({e.Message})", e);
        }
        try
        {
            var found = new RouterIdentity(
                json["models"]!.AsArray().Select(n => n!.GetValue<string>()).ToArray(),
                json["model_ids"]!.AsArray().Select(n => n!.GetValue<string>()).ToArray(),
                (string?)json["embedding"] ?? "", (string?)json["settings"] ?? "");
            if (expected.Mismatch(found) is { } why)
                throw new ConfigException($"router file '{path}' belongs to another set-up: {why}; delete it or point router_path elsewhere to train a new one");
            string kind = (string?)json["kind"] ?? "";
            if (expectedKind is not null && kind != expectedKind)
                throw new ConfigException($"router file '{path}' holds a '{kind}' router, not the '{expectedKind}' asked for; delete it or point router_path elsewhere");
            var router = RouterTrainer.Restore(kind, found.Models, json["dimension"]!.GetValue<int>(), new RouterState(json["state"]!.AsObject()));
            router.Strong = json["strong"]?.GetValue<int>() is int s and >= 0 && s < found.Models.Count ? s : throw new FormatException("bad 'strong'");
            return router;
        }
        catch (Exception e) when (e is FormatException or InvalidOperationException or NullReferenceException or ArgumentException or KeyNotFoundException)
        {
            throw new ConfigException($"router file '{path}' is damaged ({e.Message}); delete it to train a new one", e);
        }
    }
}
