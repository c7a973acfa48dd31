using System.Globalization;

namespace Consort.Formats.Gguf;

/// <summary>GGUF metadata value types (on-disk ids).</summary>
public enum GgufValueType : uint
{
#pragma warning disable CS1591
    UInt8 = 0, Int8 = 1, UInt16 = 2, Int16 = 3, UInt32 = 4, Int32 = 5, Float32 = 6, Bool = 7,
    String = 8, Array = 9, UInt64 = 10, Int64 = 11, Float64 = 12,
#pragma warning restore CS1591
}

/// <summary>
/// A metadata value. Scalars hold their CLR value (byte, sbyte, ushort, short, uint, int, float, bool,
/// string, ulong, long, double); arrays hold a CLR array of the element type (string[], int[], float[], ...).
/// </summary>
public sealed record GgufValue(GgufValueType Type, object Value, GgufValueType ElementType = GgufValueType.UInt8)
{
    /// <summary>True for arrays.</summary>
    public bool IsArray => Type == GgufValueType.Array;

    /// <summary>Number of elements of an array (1 for scalars).</summary>
    public int Count => Value is Array a ? a.Length : 1;

    /// <summary>The value as a 64-bit integer (integer scalars and bools).</summary>
    public long AsInt64() => Value switch
    {
        byte b => b, sbyte b => b, ushort u => u, short s => s, uint u => u, int i => i, ulong u => checked((long)u), long l => l,
        bool b => b ? 1 : 0,
        _ => throw new InvalidCastException($"GGUF value of type {Type} is not an integer"),
    };

    /// <summary>The value as a double (numeric scalars).</summary>
    public double AsDouble() => Value switch
    {
        float f => f, double d => d,
        _ => AsInt64(),
    };

    /// <summary>Compact text for display.</summary>
    public override string ToString() => Value switch
    {
        string s => s,
        Array a => $"[{ElementType} x {a.Length}]",
        float f => f.ToString(CultureInfo.InvariantCulture),
        double d => d.ToString(CultureInfo.InvariantCulture),
        _ => Convert.ToString(Value, CultureInfo.InvariantCulture) ?? "",
    };

    /// <summary>Makes a string value.</summary>
    public static GgufValue Of(string s) => new(GgufValueType.String, s);
    /// <summary>Makes a u32 value.</summary>
    public static GgufValue Of(uint v) => new(GgufValueType.UInt32, v);
    /// <summary>Makes an i32 value.</summary>
    public static GgufValue Of(int v) => new(GgufValueType.Int32, v);
    /// <summary>Makes a u64 value.</summary>
    public static GgufValue Of(ulong v) => new(GgufValueType.UInt64, v);
    /// <summary>Makes an f32 value.</summary>
    public static GgufValue Of(float v) => new(GgufValueType.Float32, v);
    /// <summary>Makes a bool value.</summary>
    public static GgufValue Of(bool v) => new(GgufValueType.Bool, v);
    /// <summary>Makes a string array.</summary>
    public static GgufValue Of(string[] v) => new(GgufValueType.Array, v, GgufValueType.String);
    /// <summary>Makes an i32 array.</summary>
    public static GgufValue Of(int[] v) => new(GgufValueType.Array, v, GgufValueType.Int32);
    /// <summary>Makes an f32 array.</summary>
    public static GgufValue Of(float[] v) => new(GgufValueType.Array, v, GgufValueType.Float32);
}

/// <summary>One tensor's entry in a GGUF file.</summary>
/// <param name="Name">Tensor name, e.g. "blk.0.attn_q.weight".</param>
/// <param name="Dimensions">Dimensions innermost-first, as GGUF stores them (ne[0] is the row length).</param>
/// <param name="Type">Element type.</param>
/// <param name="Offset">Offset of the data relative to the start of the data section.</param>
/// <param name="ByteSize">Size of the data in bytes.</param>
public sealed record GgufTensorInfo(string Name, long[] Dimensions, GgmlType Type, long Offset, long ByteSize)
{
    /// <summary>Number of elements.</summary>
    public long ElementCount => Dimensions.Aggregate(1L, (a, b) => a * b);
    /// <summary>Shape for messages, innermost-first like GGUF: e.g. [172, 64].</summary>
    public string ShapeText => "[" + string.Join(", ", Dimensions) + "]";
}
