using System.Security.Cryptography;

namespace Consort.Training;

/// <summary>
/// Finds the built-in model zoo: <c>zoo:NAME</c> model and dataset references resolve to files in the repository's
/// <c>zoo/</c> folder (found by walking up from the assembly to <c>Consort.slnx</c>), or in the folder named by the
/// <c>CONSORT_ZOO</c> environment variable.
/// </summary>
public static class Zoo
{
    /// <summary>Reference prefix.</summary>
    public const string Prefix = "zoo:";
    /// <summary>Environment variable that overrides the zoo folder.</summary>
    public const string EnvVar = "CONSORT_ZOO";

    /// <summary>True when <paramref name="reference"/> starts with <c>zoo:</c>.</summary>
    public static bool IsZooReference(string? reference) => reference is not null && reference.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase);

    /// <summary>The zoo folder (throws when none is found).</summary>
    public static string Directory()
    {
        var env = Environment.GetEnvironmentVariable(EnvVar);
        if (!string.IsNullOrWhiteSpace(env))
            return System.IO.Directory.Exists(env) ? Path.GetFullPath(env) : throw new ConsortException($"{EnvVar}={env}: folder not found");
        foreach (var start in new[] { Path.GetDirectoryName(typeof(Zoo).Assembly.Location), AppContext.BaseDirectory, System.IO.Directory.GetCurrentDirectory() })
        {
            for (var dir = string.IsNullOrEmpty(start) ? null : new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "Consort.slnx")))
                {
                    var zoo = Path.Combine(dir.FullName, "zoo");
                    if (System.IO.Directory.Exists(zoo)) return zoo;
                    break;
                }
        }
        throw new ConsortException($"model zoo not found: no zoo/ folder beside Consort.slnx above {AppContext.BaseDirectory}; set {EnvVar}");
    }

    /// <summary>The zoo's manifest.</summary>
    public static ZooManifest Manifest() => ZooManifest.Load(Path.Combine(Directory(), "manifest.json"));

    /// <summary>Maps <c>zoo:NAME</c> to the model's GGUF path (checking that the file exists).</summary>
    public static string ResolveModel(string reference)
    {
        var name = NameOf(reference);
        var m = Manifest();
        var model = m.Models.FirstOrDefault(x => string.Equals(x.Name, name, StringComparison.OrdinalIgnoreCase))
                    ?? throw new ConsortException($"zoo model '{name}' not found; the zoo has: {string.Join(", ", m.Models.Select(x => x.Name).Concat(m.Adapters.Select(x => x.Name + " (LoRA adapter)")))}");
        var path = Path.Combine(Directory(), model.File);
        return File.Exists(path) ? path : throw new ModelFileException(path, $"zoo model '{name}' is listed in the manifest but its file is missing");
    }

    /// <summary>
    /// When <c>zoo:NAME</c> names a LoRA adapter of the zoo, its base model's GGUF path and the adapter's path (both checked
    /// to exist); otherwise false.
    /// </summary>
    public static bool TryResolveAdapter(string reference, out string basePath, out string adapterPath)
    {
        var name = NameOf(reference);
        var m = Manifest();
        basePath = adapterPath = "";
        var a = m.Adapters.FirstOrDefault(x => string.Equals(x.Name, name, StringComparison.OrdinalIgnoreCase));
        if (a is null) return false;
        basePath = ResolveModel(Prefix + a.Base);
        adapterPath = Path.Combine(Directory(), a.File);
        return File.Exists(adapterPath) ? true : throw new ModelFileException(adapterPath, $"zoo adapter '{name}' is listed in the manifest but its file is missing");
    }

    /// <summary>Maps <c>zoo:NAME</c> to the dataset's JSON path (shared dataset layout).</summary>
    public static string ResolveDataset(string reference)
    {
        var name = NameOf(reference);
        var m = Manifest();
        var ds = m.Datasets.FirstOrDefault(x => string.Equals(x.Name, name, StringComparison.OrdinalIgnoreCase))
                 ?? throw new ConsortException($"zoo dataset '{name}' not found; the zoo has: {string.Join(", ", m.Datasets.Select(x => x.Name))}");
        var path = Path.Combine(Directory(), ds.File);
        return File.Exists(path) ? path : throw new ConsortException($"zoo dataset '{name}': file {path} is missing");
    }

    /// <summary>Lower-case hex SHA-256 of a file.</summary>
    public static string Sha256(string path)
    {
        using var s = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(s));
    }

    private static string NameOf(string reference)
    {
        if (!IsZooReference(reference)) throw new ConsortException($"'{reference}' is not a zoo reference (expected zoo:NAME)");
        var name = reference[Prefix.Length..].Trim();
        return name.Length > 0 ? name : throw new ConsortException($"'{reference}': zoo reference without a name");
    }
}
