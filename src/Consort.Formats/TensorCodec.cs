using System.Buffers.Binary;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;
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
                HalfToSingle(MemoryMarshal.Cast<byte, ushort>(source)[..destination.Length], destination);
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

    /// <summary>
    /// F16 bits to F32, exactly as <see cref="TensorPrimitives.ConvertToSingle(ReadOnlySpan{Half}, Span{float})"/>
    /// (NaNs keep their payload and become quiet), with fewer vector operations: the magnitude bits shifted into F32
    /// position and multiplied by 2^112 give every finite value, subnormals included; infinities and NaNs are patched.
    /// </summary>
    public static void HalfToSingle(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        if (destination.Length < source.Length) throw new ArgumentException("destination too short");
        var dst = MemoryMarshal.Cast<float, uint>(destination);
        int i = 0;
        if (System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated)
        {
            var magic = System.Runtime.Intrinsics.Vector256.Create(0x77800000u).AsSingle();     // 2^112
            var infBits = System.Runtime.Intrinsics.Vector256.Create(0x7c00u << 13);
            var expAll = System.Runtime.Intrinsics.Vector256.Create(0x7f800000u);
            var quiet = System.Runtime.Intrinsics.Vector256.Create(0x00400000u);
            var signMask = System.Runtime.Intrinsics.Vector256.Create(0x8000u);
            var magMask = System.Runtime.Intrinsics.Vector256.Create(0x7fffu);
            ref ushort s0 = ref MemoryMarshal.GetReference(source);
            ref uint d0 = ref MemoryMarshal.GetReference(dst);
            for (; i + 8 <= source.Length; i += 8)
            {
                var h = System.Runtime.Intrinsics.Vector256.WidenLower(System.Runtime.Intrinsics.Vector128.LoadUnsafe(ref s0, (nuint)i).ToVector256Unsafe());
                var sign = (h & signMask) << 16;
                var mag = (h & magMask) << 13;
                var f = (mag.AsSingle() * magic).AsUInt32();
                var special = System.Runtime.Intrinsics.Vector256.GreaterThanOrEqual(mag, infBits);
                var nan = System.Runtime.Intrinsics.Vector256.GreaterThan(mag, infBits);
                f = System.Runtime.Intrinsics.Vector256.ConditionalSelect(special, mag | expAll | (nan & quiet), f);
                (f | sign).StoreUnsafe(ref d0, (nuint)i);
            }
        }
        if (i < source.Length)
            TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<ushort, Half>(source[i..]), destination[i..source.Length]);
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
