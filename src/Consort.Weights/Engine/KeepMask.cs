using System.Runtime.Intrinsics;

namespace Consort.Weights.Engine;

/// <summary>Keep masks of the random pruning methods: bit j of the mask says whether element j stays.</summary>
internal static class KeepMask
{
    /// <summary>Zeroes the elements of <paramref name="bits"/> whose bit in <paramref name="mask"/> is clear, eight or sixteen at a time where vectors allow.</summary>
    public static void Apply(ReadOnlySpan<ulong> mask, Span<uint> bits)
    {
        int j = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var lanes = Vector512.Create(1u, 1u << 1, 1u << 2, 1u << 3, 1u << 4, 1u << 5, 1u << 6, 1u << 7, 1u << 8, 1u << 9, 1u << 10, 1u << 11, 1u << 12, 1u << 13, 1u << 14, 1u << 15);
            for (; j + 16 <= bits.Length; j += 16)
            {
                var word = Vector512.Create((uint)(mask[j >> 6] >> (j & 63)) & 0xffffu);
                (Vector512.LoadUnsafe(ref bits[j]) & Vector512.Equals(word & lanes, lanes)).StoreUnsafe(ref bits[j]);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            var lanes = Vector256.Create(1u, 1u << 1, 1u << 2, 1u << 3, 1u << 4, 1u << 5, 1u << 6, 1u << 7);
            for (; j + 8 <= bits.Length; j += 8)
            {
                var word = Vector256.Create((uint)(mask[j >> 6] >> (j & 63)) & 0xffu);
                (Vector256.LoadUnsafe(ref bits[j]) & Vector256.Equals(word & lanes, lanes)).StoreUnsafe(ref bits[j]);
            }
        }
        for (; j < bits.Length; j++) bits[j] &= 0u - (uint)((mask[j >> 6] >> (j & 63)) & 1);
    }

    /// <summary>Sets in <paramref name="mask"/>, from bit <paramref name="at"/> on, the low <paramref name="count"/> (at most 64) bits of <paramref name="word"/>.</summary>
    public static void Or(ulong[] mask, int at, ulong word, int count)
    {
        int sh = at & 63;
        mask[at >> 6] |= word << sh;
        if (sh != 0 && count > 64 - sh) mask[(at >> 6) + 1] |= word >> (64 - sh);
    }
}
