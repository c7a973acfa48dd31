using Consort.Weights.Engine;

namespace Consort.Weights.Methods;

/// <summary>A parameter a merge method reads (mergekit name and default; null default = required).</summary>
/// <param name="Name">Parameter name as in mergekit configs.</param>
/// <param name="Default">Default, or null when required.</param>
/// <param name="PerModel">True for per-model (tensor) parameters, false for global ones.</param>
public sealed record MergeParameterSpec(string Name, object? Default, bool PerModel)
{
    /// <summary>Smallest valid value (numbers only).</summary>
    public double Min { get; init; } = double.NegativeInfinity;
    /// <summary>Largest valid value (numbers only).</summary>
    public double Max { get; init; } = double.PositiveInfinity;
    /// <summary>Whether <see cref="Min"/> itself is excluded.</summary>
    public bool MinExclusive { get; init; }
    /// <summary>Whether <see cref="Max"/> itself is excluded.</summary>
    public bool MaxExclusive { get; init; }
    /// <summary>Whole numbers only (iteration counts).</summary>
    public bool Integer { get; init; }
    /// <summary>A true/false switch (its default is a bool); 0 and 1 are accepted as well.</summary>
    public bool IsFlag => Default is bool;

    /// <summary>The valid range in words, e.g. "a number in [0, 1]".</summary>
    public string RangeText => IsFlag ? "true or false"
        : (Integer ? "a whole number" : "a finite number") + (double.IsNegativeInfinity(Min) && double.IsPositiveInfinity(Max) ? ""
            : double.IsPositiveInfinity(Max) ? (MinExclusive ? $" > {Min}" : $" >= {Min}")
            : double.IsNegativeInfinity(Min) ? (MaxExclusive ? $" < {Max}" : $" <= {Max}")
            : $" in {(MinExclusive ? "(" : "[")}{Min}, {Max}{(MaxExclusive ? ")" : "]")}");

    /// <summary>Null when <paramref name="value"/> is valid for this parameter, else why not.</summary>
    public string? Check(object value)
    {
        if (IsFlag) return value is bool || value is double d0 && (d0 == 0 || d0 == 1) ? null : "must be true or false";
        if (value is not double d) return $"must be {RangeText}";
        if (!double.IsFinite(d) || d < Min || d > Max || (MinExclusive && d == Min) || (MaxExclusive && d == Max) || (Integer && d != Math.Floor(d)))
            return $"must be {RangeText}";
        return null;
    }
}

/// <summary>A weight merge method (one file each; found by <see cref="MergeMethodRegistry"/>).</summary>
public interface IMergeMethod
{
    /// <summary>merge_method name, e.g. "ties".</summary>
    string Name { get; }
    /// <summary>Whether base_model is required.</summary>
    bool RequiresBase { get; }
    /// <summary>
    /// Whether a base_model may be given (it then changes the computation, e.g. task vectors): model counts are then
    /// of the models besides it. False for methods that require one or ignore it.
    /// </summary>
    bool OptionalBase => false;
    /// <summary>Fewest models besides the base (or in total when the method takes no base).</summary>
    int MinModels { get; }
    /// <summary>Most models besides the base.</summary>
    int MaxModels { get; }
    /// <summary>Parameters read.</summary>
    IReadOnlyList<MergeParameterSpec> Parameters { get; }
    /// <summary>Merges one tensor: reads chunks from the job and emits the output in order.</summary>
    void Merge(TensorJob job);

    /// <summary>
    /// Checks that need several parameters together (e.g. DELLA's density ± epsilon inside (0, 1)), before any file is
    /// opened; single values are range-checked from <see cref="Parameters"/>. Throws <see cref="ConfigException"/>.
    /// </summary>
    void Validate(Config.MergeConfig config) { }
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
