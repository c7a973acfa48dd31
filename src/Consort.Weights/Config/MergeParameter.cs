using System.Globalization;
using Consort.Formats;

namespace Consort.Weights.Config;

/// <summary>
/// A mergekit parameter value: a scalar (number or bool), a gradient (list of numbers interpolated across layers),
/// or a list of <c>{filter, value}</c> conditions (first filter contained in the tensor's Hugging Face name wins;
/// an entry without a filter is the fallback).
/// </summary>
public sealed class MergeParameter
{
    private readonly object? _scalar;
    private readonly double[]? _gradient;
    private readonly (string? Filter, MergeParameter Value)[]? _conditions;

    private MergeParameter(object? scalar, double[]? gradient, (string?, MergeParameter)[]? conditions)
    {
        _scalar = scalar; _gradient = gradient; _conditions = conditions;
    }

    /// <summary>A scalar value (double or bool).</summary>
    public static MergeParameter Scalar(object value) => new(value, null, null);
    /// <summary>A layer gradient.</summary>
    public static MergeParameter Gradient(double[] anchors) => new(null, anchors, null);
    /// <summary>Filtered values.</summary>
    public static MergeParameter Conditional((string? Filter, MergeParameter Value)[] c) => new(null, null, c);

    /// <summary>
    /// Value for one tensor. Gradients interpolate linearly between anchors over layer/(layers-1); tensors outside
    /// the layers (embeddings, final norm, head) take the first anchor before the layers and the last after.
    /// </summary>
    public object? Resolve(string tensorName, int layers)
    {
        if (_conditions is not null)
        {
            var hf = TensorNames.ToHfStyle(tensorName);
            foreach (var (f, v) in _conditions)
                if (f is null || hf.Contains(f, StringComparison.Ordinal) || tensorName.Contains(f, StringComparison.Ordinal))
                    return v.Resolve(tensorName, layers);
            return null;
        }
        if (_gradient is null) return _scalar;
        if (_gradient.Length == 1) return _gradient[0];
        double t;
        var layer = TensorNames.LayerIndex(tensorName);
        if (layer is int l) t = layers <= 1 ? 0 : (double)l / (layers - 1);
        else t = TensorNames.IsEmbedding(tensorName) ? 0 : 1;
        double scaled = t * (_gradient.Length - 1);
        int i0 = Math.Min((int)Math.Floor(scaled), _gradient.Length - 1), i1 = Math.Min(i0 + 1, _gradient.Length - 1);
        double frac = scaled - i0;
        return _gradient[i0] * (1 - frac) + _gradient[i1] * frac;
    }

    /// <summary>
    /// Every value this parameter can resolve to, for checks before any work: the scalar, each gradient anchor
    /// (interpolation stays between anchors) and the values of every filtered entry.
    /// </summary>
    public IEnumerable<object> Values()
    {
        if (_conditions is not null) return _conditions.SelectMany(c => c.Value.Values());
        if (_gradient is not null) return _gradient.Select(x => (object)x);
        return _scalar is null ? [] : [_scalar];
    }

    /// <summary>The value as mergekit YAML/JSON would write it (scalar, list, or list of {filter, value}).</summary>
    public object? ToPlain() => _conditions is not null
        ? _conditions.Select(c => (object?)new Dictionary<string, object?> { ["filter"] = c.Filter, ["value"] = c.Value.ToPlain() }.Where(kv => kv.Value is not null).ToDictionary()).ToList()
        : _gradient is not null ? _gradient.Length == 1 ? _gradient[0] : _gradient.Cast<object?>().ToList() : _scalar;

    /// <summary>Builds a parameter from parsed YAML/JSON (scalars, lists, maps).</summary>
    public static MergeParameter From(object? node, string where)
    {
        switch (node)
        {
            case null: throw new ConfigException($"{where}: empty value");
            case bool b: return Scalar(b);
            case double or float or int or long or decimal: return Scalar(Convert.ToDouble(node, CultureInfo.InvariantCulture));
            case string s:
                if (double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d)) return Scalar(d);
                if (bool.TryParse(s, out var bb)) return Scalar(bb);
                throw new ConfigException($"{where}: '{s}' is not a number or boolean");
            case IList<object?> list:
                if (list.Count == 0) throw new ConfigException($"{where}: empty list");
                if (list.All(x => x is IDictionary<string, object?>))
                    return Conditional(list.Cast<IDictionary<string, object?>>().Select(m =>
                    {
                        if (!m.TryGetValue("value", out var v)) throw new ConfigException($"{where}: a filtered entry needs 'value'");
                        m.TryGetValue("filter", out var f);
                        return ((string?)f?.ToString(), From(v, where));
                    }).ToArray());
                return Gradient(list.Select(x => From(x, where).Resolve("", 1) is double v ? v : throw new ConfigException($"{where}: gradient entries must be numbers")).ToArray());
            default: throw new ConfigException($"{where}: unsupported value {node}");
        }
    }
}
