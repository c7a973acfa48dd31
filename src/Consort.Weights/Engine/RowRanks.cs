using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Consort.Weights.Engine;

/// <summary>
/// Ranks of magnitudes within a row by an LSD radix sort of |x|'s bits (stable, so equal magnitudes rank in element
/// order), in linear time: DELLA ranks every row of every task vector. Only the bits that differ between the row's
/// keys are sorted on (their span found first, by OR and AND over the row), in as few digits of at most 12 bits as
/// cover it: deltas between F16/BF16 weights share their low mantissa bits and often their top exponent bits, so a
/// row usually needs two passes over small histograms instead of three over 31 bits. Key and element index travel
/// packed in one 64-bit word (one load and one store per element and digit).
/// </summary>
public sealed class RowRanks
{
    private const int MaxDigit = 12;
    private ulong[] _a = [], _b = [];
    private readonly int[] _h = new int[2 << MaxDigit];

    /// <summary>Writes the 0-based rank of |row[j]| among the row's magnitudes (ascending) into <paramref name="rank"/>.</summary>
    public void Rank(ReadOnlySpan<float> row, Span<int> rank)
    {
        int n = row.Length;
        if (n == 0) return;
        if (rank.Length < n) throw new ArgumentException("rank too short");
        var keys = MemoryMarshal.Cast<float, uint>(row);
        uint any = 0, all = uint.MaxValue;
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var vo = Vector256<uint>.Zero; var va = Vector256<uint>.AllBitsSet;
            for (; i + 8 <= n; i += 8) { var k = Vector256.LoadUnsafe(ref MemoryMarshal.GetReference(keys), (nuint)i); vo |= k; va &= k; }
            for (int l = 0; l < 8; l++) { any |= vo[l]; all &= va[l]; }
        }
        for (; i < n; i++) { any |= keys[i]; all &= keys[i]; }
        uint varying = (any ^ all) & 0x7fffffffu;
        if (varying == 0)
        {
            // Every magnitude is equal: ranks are element order.
            for (int j = 0; j < n; j++) rank[j] = j;
            return;
        }
        int lo = BitOperations.TrailingZeroCount(varying), span = 32 - BitOperations.LeadingZeroCount(varying) - lo;
        // Fewest passes for long rows; for short ones more passes over smaller histograms (clearing and summing a
        // histogram costs about as much per bucket as a pass does per element).
        int digits = (span + MaxDigit - 1) / MaxDigit;
        for (int d = digits + 1; d <= 3; d++)
            if (d * (3L * n + (1L << ((span + d - 1) / d))) < digits * (3L * n + (1L << ((span + digits - 1) / digits)))) digits = d;
        int width = (span + digits - 1) / digits;
        uint mask = (1u << width) - 1;
        int buckets = 1 << width;
        var h = _h.AsSpan(0, digits * buckets);
        h.Clear();
        if (_a.Length < n) { _a = new ulong[n]; _b = new ulong[n]; }
        Span<ulong> a = _a.AsSpan(0, n), b = _b.AsSpan(0, n);
        int s0 = lo, s1 = lo + width, s2 = lo + 2 * width;
        switch (digits)
        {
            case 1:
                for (int j = 0; j < n; j++) { uint k = keys[j] & 0x7fffffffu; a[j] = (ulong)k << 32 | (uint)j; h[(int)((k >> s0) & mask)]++; }
                break;
            case 2:
                for (int j = 0; j < n; j++)
                {
                    uint k = keys[j] & 0x7fffffffu; a[j] = (ulong)k << 32 | (uint)j;
                    h[(int)((k >> s0) & mask)]++; h[buckets + (int)((k >> s1) & mask)]++;
                }
                break;
            default:
                for (int j = 0; j < n; j++)
                {
                    uint k = keys[j] & 0x7fffffffu; a[j] = (ulong)k << 32 | (uint)j;
                    h[(int)((k >> s0) & mask)]++; h[buckets + (int)((k >> s1) & mask)]++; h[2 * buckets + (int)((k >> s2) & mask)]++;
                }
                break;
        }
        // Each pass moves the words from one buffer to the other; track where they are.
        for (int d = 0; d < digits; d++)
        {
            var hd = h.Slice(d * buckets, buckets);
            Prefix(hd);
            Scatter(a, b, hd, 32 + lo + d * width, mask);
            Swap(ref a, ref b);
        }
        for (int p = 0; p < a.Length; p++) rank[(int)(uint)a[p]] = p;
    }

    private static void Swap(ref Span<ulong> a, ref Span<ulong> b)
    {
        var t = a; a = b; b = t;
    }

    private static void Prefix(Span<int> h)
    {
        int sum = 0;
        for (int i = 0; i < h.Length; i++) { int c = h[i]; h[i] = sum; sum += c; }
    }

    private static void Scatter(ReadOnlySpan<ulong> from, Span<ulong> to, Span<int> offsets, int shift, uint mask)
    {
        foreach (var v in from) to[offsets[(int)((v >> shift) & mask)]++] = v;
    }
}
