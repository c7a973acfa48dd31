using System.Text.Json.Nodes;

namespace Consort.Config;

/// <summary>
/// Resolves <c>zoo:NAME</c> references to the built-in model zoo: the folder named by <c>CONSORT_ZOO</c>,
/// else the repository's <c>zoo/</c> folder (found above the running assembly).
/// </summary>
public static class ModelZoo
{
    /// <summary>The zoo folder, or null when none is found.</summary>
    public static string? Folder
    {
        get
        {
            if (Environment.GetEnvironmentVariable("CONSORT_ZOO") is { Length: > 0 } env) return env;
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "Consort.slnx")) && Directory.Exists(Path.Combine(dir.FullName, "zoo")))
                    return Path.Combine(dir.FullName, "zoo");
            return null;
        }
    }

    /// <summary>Model names listed in the zoo manifest (or the .gguf files in the folder).</summary>
    public static IReadOnlyList<string> ModelNames()
    {
        var folder = Folder;
        if (folder is null) return [];
        var manifest = ReadManifest(folder);
        if (manifest?["models"] is JsonArray arr)
            return arr.Select(m => m?["name"]?.GetValue<string>()).Where(n => n is not null).Cast<string>().ToList();
        if (manifest?["models"] is JsonObject obj) return obj.Select(kv => kv.Key).ToList();
        return Directory.Exists(folder) ? Directory.GetFiles(folder, "*.gguf").Select(p => Path.GetFileNameWithoutExtension(p)).Order().ToList() : [];
    }

    /// <summary>The GGUF path of zoo model <paramref name="name"/>.</summary>
    public static string ResolveModel(string name)
    {
        var folder = Folder ?? throw new ConfigException($"zoo:{name}: no model zoo found (set CONSORT_ZOO to the folder holding the zoo's manifest.json)");
        var manifest = ReadManifest(folder);
        string? file = null;
        if (manifest?["models"] is JsonArray arr)
            file = arr.FirstOrDefault(m => m?["name"]?.GetValue<string>() == name)?["file"]?.GetValue<string>();
        else if (manifest?["models"] is JsonObject obj && obj[name] is JsonObject entry)
            file = entry["file"]?.GetValue<string>();
        var path = Path.Combine(folder, file ?? name + ".gguf");
        if (!File.Exists(path))
        {
            var names = ModelNames();
            throw new ConfigException($"zoo:{name}: no such model in {folder}; available: {(names.Count == 0 ? "(none)" : string.Join(", ", names.Select(n => "zoo:" + n)))}");
        }
        return path;
    }

    /// <summary>The dataset file of <c>zoo:NAME</c> (zoo/datasets/NAME.json), or null.</summary>
    public static string? ResolveDataset(string name)
    {
        var folder = Folder;
        if (folder is null) return null;
        var path = Path.Combine(folder, "datasets", name.EndsWith(".json") ? name : name + ".json");
        return File.Exists(path) ? path : null;
    }

    private static JsonNode? ReadManifest(string folder)
    {
        var path = Path.Combine(folder, "manifest.json");
        if (!File.Exists(path)) return null;
        try { return JsonNode.Parse(File.ReadAllText(path)); }
        catch (System.Text.Json.JsonException e) { throw new ConfigException($"{path}: invalid JSON: {e.Message}", e); }
    }
}
