using System.Reflection;
using System.Runtime.Loader;
using Microsoft.Extensions.AI;

namespace Consort.Embeddings;

/// <summary>
/// The offline MiniLM embedder, loaded at run time from the optional <c>Consort.Embeddings.MiniLM</c> build. That
/// project carries ML.NET and ONNX Runtime for every platform (~335 MB), so nothing references it and the default
/// build stays small; <c>./test.sh</c> (the solution build) builds it, and so does
/// <c>dotnet build src/Consort.Embeddings.MiniLM -c Release</c>.
/// </summary>
public static class MiniLmEmbeddings
{
    /// <summary>The plugin's assembly name.</summary>
    public const string AssemblyName = "Consort.Embeddings.MiniLM";
    private const string TypeName = "Consort.Embeddings.MiniLM.MiniLmEmbeddingGenerator";
    /// <summary>Environment variable naming the plugin's folder (or its dll) when it is not beside the host's build.</summary>
    public const string PathVariable = "CONSORT_MINILM";

    private static readonly Lock Gate = new();
    private static Type? _type;

    /// <summary>Identity of these embeddings in router files.</summary>
    public const string Identity = "minilm:sentence-transformers/all-MiniLM-L6-v2";

    /// <summary>Where the plugin dll is, or null when it has not been built.</summary>
    public static string? Locate()
    {
        if (Environment.GetEnvironmentVariable(PathVariable) is { Length: > 0 } configured)
        {
            var dll = Directory.Exists(configured) ? Path.Combine(configured, AssemblyName + ".dll") : configured;
            return File.Exists(dll) ? dll : null;
        }
        // Artifacts layout: artifacts/bin/<project>/<configuration>/; look beside the host's own project folder.
        var baseDir = AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar);
        foreach (var candidate in new[]
        {
            Path.Combine(baseDir, AssemblyName + ".dll"),
            Path.Combine(Path.GetDirectoryName(Path.GetDirectoryName(baseDir)) ?? baseDir, AssemblyName, Path.GetFileName(baseDir), AssemblyName + ".dll"),
        })
            if (File.Exists(candidate)) return Path.GetFullPath(candidate);
        return null;
    }

    /// <summary>Creates the generator (≈1.5-3 s: the model loads into ONNX Runtime), or explains how to build it.</summary>
    public static IEmbeddingGenerator<string, Embedding<float>> Create()
    {
        lock (Gate)
        {
            if (_type is null)
            {
                var dll = Locate() ?? throw new ConfigException(
                    $"embedding 'minilm' needs the optional {AssemblyName} build, which is not beside this one (it carries ~335 MB of ONNX Runtime, " +
                    $"so the default build leaves it out): run 'dotnet build src/{AssemblyName} -c Release' (./test.sh builds it), " +
                    $"set {PathVariable} to its folder, or choose another \"embedding\" (a GGUF model or an endpoint)");
                var context = new PluginContext(dll);
                _type = context.LoadFromAssemblyPath(dll).GetType(TypeName, throwOnError: true)!;
            }
        }
        try
        {
            return (IEmbeddingGenerator<string, Embedding<float>>)Activator.CreateInstance(_type)!;
        }
        catch (TargetInvocationException e)
        {
            throw new ConsortException($"the MiniLM embedder could not start ({e.InnerException?.Message ?? e.Message})", e);
        }
    }

    // Resolves the plugin's dependencies (ML.NET, ONNX Runtime and its natives) from its own deps.json, while the
    // assemblies the host already has (Microsoft.Extensions.AI.Abstractions above all) come from the host, so the
    // plugin's IEmbeddingGenerator is the host's.
    private sealed class PluginContext(string dll) : AssemblyLoadContext(AssemblyName)
    {
        private readonly AssemblyDependencyResolver _resolver = new(dll);

        protected override Assembly? Load(AssemblyName name)
        {
            if (Default.Assemblies.Any(a => a.GetName().Name == name.Name)) return null;
            try
            {
                if (Default.LoadFromAssemblyName(name) is { } shared) return shared;
            }
            catch (FileNotFoundException) { }
            return _resolver.ResolveAssemblyToPath(name) is { } path ? LoadFromAssemblyPath(path) : null;
        }

        protected override IntPtr LoadUnmanagedDll(string unmanagedDllName) =>
            _resolver.ResolveUnmanagedDllToPath(unmanagedDllName) is { } path ? LoadUnmanagedDllFromPath(path) : IntPtr.Zero;
    }
}
