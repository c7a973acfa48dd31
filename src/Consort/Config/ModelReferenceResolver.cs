namespace Consort.Config;

/// <summary>
/// Turns a model reference as a user writes it anywhere a model is named (run configs, merge YAML, inspect, train,
/// convert) into a local path: <c>zoo:NAME</c> (the built-in zoo), <c>hf:owner/repo[@revision]/path/file</c> (downloaded
/// once into the cache, resumably), or a path (relative to <paramref name="baseDirectory"/>).
/// </summary>
public static class ModelReferenceResolver
{
    /// <summary>True for <c>zoo:</c> and <c>hf:</c> references.</summary>
    public static bool IsReference(string reference) =>
        reference.StartsWith("zoo:", StringComparison.OrdinalIgnoreCase) || reference.StartsWith("hf:", StringComparison.OrdinalIgnoreCase);

    /// <summary>The local path of <paramref name="reference"/>, downloading an <c>hf:</c> file when it is not cached.</summary>
    /// <exception cref="ConsortException">Unknown zoo name, bad hf: reference, failed download.</exception>
    public static string Resolve(string reference, string? baseDirectory = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(reference);
        if (reference.StartsWith("zoo:", StringComparison.OrdinalIgnoreCase)) return Consort.Training.Zoo.ResolveModel(reference);
        if (reference.StartsWith("hf:", StringComparison.OrdinalIgnoreCase))
        {
            var hf = HuggingFaceReference.Parse(reference);
            var path = HuggingFaceHub.CachePath(hf);
            return File.Exists(path) ? path : HuggingFaceHub.EnsureAsync(hf).GetAwaiter().GetResult();
        }
        return Path.GetFullPath(reference, baseDirectory ?? Environment.CurrentDirectory);
    }

    /// <summary>The resolver for merge configs (<c>MergeConfig.Load(path, resolveReference)</c>): references only.</summary>
    public static string ResolveReference(string reference) => Resolve(reference);
}
