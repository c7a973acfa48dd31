using Consort.Weights.Engine;

namespace Consort.Weights.Methods;

/// <summary>A parameter a merge method reads (mergekit name and default; null default = required).</summary>
/// <param name="Name">Parameter name as in mergekit configs.</param>
/// <param name="Default">Default, or null when required.</param>
/// <param name="PerModel">True for per-model (tensor) parameters, false for global ones.</param>
public sealed record MergeParameterSpec(string Name, object? Default, bool PerModel);

/// <summary>A weight merge method (one file each; found by <see cref="MergeMethodRegistry"/>).</summary>
public interface IMergeMethod
{
    /// <summary>merge_method name, e.g. "ties".</summary>
    string Name { get; }
    /// <summary>Whether base_model is required.</summary>
    bool RequiresBase { get; }
    /// <summary>Fewest models besides the base (or in total when the method takes no base).</summary>
    int MinModels { get; }
    /// <summary>Most models besides the base.</summary>
    int MaxModels { get; }
    /// <summary>Parameters read.</summary>
    IReadOnlyList<MergeParameterSpec> Parameters { get; }
    /// <summary>Merges one tensor: reads chunks from the job and emits the output in order.</summary>
    void Merge(TensorJob job);
}

/// <summary>Finds merge methods by name.</summary>
public static class MergeMethodRegistry
{
    private static readonly Lazy<Dictionary<string, IMergeMethod>> All = new(() =>
        typeof(IMergeMethod).Assembly.GetTypes()
            .Where(t => t is { IsAbstract: false, IsInterface: false } && typeof(IMergeMethod).IsAssignableFrom(t) && t.GetConstructor(Type.EmptyTypes) is not null)
            .Select(t => (IMergeMethod)Activator.CreateInstance(t)!)
            .ToDictionary(m => m.Name));

    /// <summary>Every method name.</summary>
    public static IEnumerable<string> Names => All.Value.Keys.Order();

    /// <summary>The method called <paramref name="name"/>.</summary>
    public static IMergeMethod Get(string name) => All.Value.TryGetValue(name, out var m) ? m
        : throw new ConfigException($"unknown merge_method '{name}' (known: {string.Join(", ", Names)})");
}
