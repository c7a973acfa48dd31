using Consort.Formats.Gguf;

namespace Consort.Formats.Safetensors;

/// <summary>Maps safetensors dtype names to the element types the codecs use.</summary>
public static class SafetensorsDType
{
    private static readonly Dictionary<string, GgmlType> ByName = new()
    {
        ["F32"] = GgmlType.F32, ["F16"] = GgmlType.F16, ["BF16"] = GgmlType.BF16, ["F64"] = GgmlType.F64,
        ["I8"] = GgmlType.I8, ["I16"] = GgmlType.I16, ["I32"] = GgmlType.I32, ["I64"] = GgmlType.I64,
    };

    /// <summary>The element type for a dtype name, or null when unsupported.</summary>
    public static GgmlType? Parse(string name) => ByName.TryGetValue(name, out var t) ? t : null;

    /// <summary>The dtype name of an element type.</summary>
    /// <exception cref="NotSupportedException">The type has no safetensors dtype (quantized types).</exception>
    public static string Name(GgmlType type) =>
        ByName.FirstOrDefault(kv => kv.Value == type).Key ?? throw new NotSupportedException($"{type} cannot be stored in safetensors (F32, F16, BF16 can)");

    /// <summary>Parses a user-facing dtype name ("float16", "bf16", "f32", ...).</summary>
    public static GgmlType ParseUser(string name) => name.Trim().ToLowerInvariant() switch
    {
        "f32" or "float32" or "float" or "fp32" => GgmlType.F32,
        "f16" or "float16" or "half" or "fp16" => GgmlType.F16,
        "bf16" or "bfloat16" => GgmlType.BF16,
        "q8_0" => GgmlType.Q8_0,
        _ => throw new ConfigException($"unknown dtype '{name}' (use float32, float16, bfloat16 or q8_0)"),
    };
}
