using System.Buffers.Binary;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Consort.Formats.Gguf;

namespace Consort.Formats;

/// <summary>Converts tensor data between storage types and F32.</summary>
public static class TensorCodec
{
    /// <summary>Decodes <paramref name="source"/> of <paramref name="type"/> into F32 values.</summary>
    /// <exception cref="NotSupportedException">The type cannot be decoded.</exception>
    public static void Decode(GgmlType type, ReadOnlySpan<byte> source, Span<float> destination)
    {
        switch (type)
        {
            case GgmlType.F32:
                MemoryMarshal.Cast<byte, float>(source)[..destination.Length].CopyTo(destination);
                break;
            case GgmlType.F16:
                TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(source)[..destination.Length], destination);
                break;
            case GgmlType.BF16:
                DecodeBf16(source, destination);
                break;
            case GgmlType.Q8_0:
                DecodeQ8_0(source, destination);
                break;
            default:
                throw new NotSupportedException($"reading {type} tensors is not supported (F32, F16, BF16 and Q8_0 are)");
        }
    }

    /// <summary>Encodes F32 values as <paramref name="type"/> (F32, F16, BF16 or Q8_0).</summary>
    public static void Encode(GgmlType type, ReadOnlySpan<float> source, Span<byte> destination)
    {
        switch (type)
        {
            case GgmlType.F32:
                MemoryMarshal.AsBytes(source).CopyTo(destination);
                break;
            case GgmlType.F16:
                TensorPrimitives.ConvertToHalf(source, MemoryMarshal.Cast<byte, Half>(destination)[..source.Length]);
                break;
            case GgmlType.BF16:
                var dst = MemoryMarshal.Cast<byte, ushort>(destination);
                for (int i = 0; i < source.Length; i++) dst[i] = ToBf16(source[i]);
                break;
            case GgmlType.Q8_0:
                EncodeQ8_0(source, destination);
                break;
            default:
                throw new NotSupportedException($"writing {type} tensors is not supported (F32, F16, BF16 and Q8_0 are)");
        }
    }

    /// <summary>Rounds an F32 to BF16 (round to nearest even; NaN stays NaN).</summary>
    public static ushort ToBf16(float f)
    {
        uint bits = BitConverter.SingleToUInt32Bits(f);
        if ((bits & 0x7fffffff) > 0x7f800000) return (ushort)((bits >> 16) | 0x40);
        return (ushort)((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
    }

    private static void DecodeBf16(ReadOnlySpan<byte> source, Span<float> destination)
    {
        var src = MemoryMarshal.Cast<byte, ushort>(source);
        for (int i = 0; i < destination.Length; i++) destination[i] = BitConverter.UInt32BitsToSingle((uint)src[i] << 16);
    }

    // Q8_0: blocks of 32 values, each an F16 scale followed by 32 signed bytes.
    private static void DecodeQ8_0(ReadOnlySpan<byte> source, Span<float> destination)
    {
        int blocks = destination.Length / 32;
        for (int b = 0; b < blocks; b++)
        {
            var block = source.Slice(b * 34, 34);
            float d = (float)BinaryPrimitives.ReadHalfLittleEndian(block);
            var q = MemoryMarshal.Cast<byte, sbyte>(block[2..]);
            var dst = destination.Slice(b * 32, 32);
            for (int i = 0; i < 32; i++) dst[i] = q[i] * d;
        }
    }

    private static void EncodeQ8_0(ReadOnlySpan<float> source, Span<byte> destination)
    {
        if (source.Length % 32 != 0) throw new NotSupportedException("Q8_0 needs a multiple of 32 values");
        for (int b = 0; b < source.Length / 32; b++)
        {
            var src = source.Slice(b * 32, 32);
            float amax = TensorPrimitives.MaxMagnitude(src);
            amax = Math.Abs(amax);
            float d = amax / 127f;
            float id = d != 0 ? 1f / d : 0f;
            var block = destination.Slice(b * 34, 34);
            BinaryPrimitives.WriteHalfLittleEndian(block, (Half)d);
            for (int i = 0; i < 32; i++) block[2 + i] = (byte)(sbyte)Math.Round(src[i] * id, MidpointRounding.AwayFromZero);
        }
    }
}
