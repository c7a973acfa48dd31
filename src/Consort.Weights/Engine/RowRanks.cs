using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

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
        uint varying = Varying(keys);
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
        int indexBits = 32 - BitOperations.LeadingZeroCount((uint)(n - 1));
        if (span + indexBits <= 32)
        {
            RankNarrow(keys, rank, lo, span, indexBits, digits, width, h);
            return;
        }
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

    // The same sort with the key's varying bits and the element index packed in 32 bits (when they fit, as for rows
    // of up to 2^12 elements whose keys vary in at most 20 bits): half the memory traffic of the 64-bit words.
    private void RankNarrow(ReadOnlySpan<uint> keys, Span<int> rank, int lo, int span, int indexBits, int digits, int width, Span<int> h)
    {
        int n = keys.Length, buckets = 1 << width;
        uint mask = (1u << width) - 1, window = span >= 32 ? uint.MaxValue : (1u << span) - 1;
        if (_na.Length < n) { _na = new uint[n]; _nb = new uint[n]; }
        Span<uint> a = _na.AsSpan(0, n), b = _nb.AsSpan(0, n);
        for (int j = 0; j < n; j++)
        {
            uint k = (keys[j] >> lo) & window;
            a[j] = k << indexBits | (uint)j;
            h[(int)(k & mask)]++;
            if (digits > 1) h[buckets + (int)((k >> width) & mask)]++;
            if (digits > 2) h[2 * buckets + (int)((k >> (2 * width)) & mask)]++;
        }
        for (int d = 0; d < digits; d++)
        {
            var hd = h.Slice(d * buckets, buckets);
            Prefix(hd);
            int shift = indexBits + d * width;
            foreach (var v in a) b[hd[(int)((v >> shift) & mask)]++] = v;
            var t = a; a = b; b = t;
        }
        uint indexMask = indexBits >= 32 ? uint.MaxValue : (1u << indexBits) - 1;
        for (int p = 0; p < n; p++) rank[(int)(a[p] & indexMask)] = p;
    }

    private uint[] _na = [], _nb = [];

    /// <summary>
    /// DELLA's keep decisions for one row, as <see cref="ElementRandom.KeepByRank"/> would make them from this row's
    /// <see cref="Rank"/>, mostly without ranking: a histogram of the magnitudes' top varying bits bounds each element's
    /// rank to its bucket's range, and the keep probability rises with the rank, so a uniform below the probability of
    /// the bucket's lowest rank keeps and one at or above that of its highest drops. Only the few elements between
    /// need their exact rank (counted over the row); a row with many such falls back to the full sort.
    /// </summary>
    public void Keep(Span<uint> bits, ulong stream, long start, double low, double step, ulong[]? mask, int maskAt, Span<int> ranks)
    {
        if (bits.IsEmpty) return;
        if (TryKeepByBounds(bits, stream, start, low, step, mask, maskAt)) { BoundedRows++; return; }
        SortedRows++;
        Rank(MemoryMarshal.Cast<uint, float>(bits), ranks);
        ElementRandom.KeepByRank(stream, start, low, step, ranks, bits, mask, maskAt);
    }

    // The magnitude bits that differ somewhere in the row (an OR and an AND over it).
    private static uint Varying(ReadOnlySpan<uint> keys)
    {
        uint any = 0, all = uint.MaxValue;
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var vo = Vector256<uint>.Zero; var va = Vector256<uint>.AllBitsSet;
            for (; i + 8 <= keys.Length; i += 8) { var k = Vector256.LoadUnsafe(ref MemoryMarshal.GetReference(keys), (nuint)i); vo |= k; va &= k; }
            for (int l = 0; l < 8; l++) { any |= vo[l]; all &= va[l]; }
        }
        for (; i < keys.Length; i++) { any |= keys[i]; all &= keys[i]; }
        return (any ^ all) & 0x7fffffffu;
    }

    // Rows decided by bounds (and counting) and rows sorted, for tests that check which path they cover.
    internal long BoundedRows, SortedRows;

    // False (and nothing changed) when the row needs the full sort.
    private bool TryKeepByBounds(Span<uint> bits, ulong stream, long start, double low, double step, ulong[]? mask, int maskAt)
    {
        int n = bits.Length;
        uint varying = Varying(bits);
        if (varying == 0 || n < 64 || !Avx2.IsSupported) return false;
        int lo = BitOperations.TrailingZeroCount(varying), span = 32 - BitOperations.LeadingZeroCount(varying) - lo;
        // About one bucket per element: clearing and bounding a bucket costs about what deciding an element does.
        int width = Math.Min(span, Math.Clamp(BitOperations.Log2((uint)n), 4, MaxDigit));
        int shift = lo + span - width, buckets = 1 << width;
        uint bmask = (uint)buckets - 1;
        var h = _h.AsSpan(0, buckets + 1);
        h.Clear();
        for (int j = 0; j < n; j++) h[(int)((bits[j] >> shift) & bmask)]++;
        // Counts to the rank of each bucket's first element (h[buckets] = n): bucket b holds ranks h[b] .. h[b + 1] − 1.
        // The probabilities of those two ranks are computed per element, by the same double operations as KeepByRank,
        // from a table of ints that stays in the L1 cache (two tables of doubles did not, and took twice the gathers).
        for (int b = 0, below = 0; b <= buckets; b++) { int c = h[b]; h[b] = below; below += c; }
        int words = (n + 63) / 64;
        if (_row.Length < words) _row = new ulong[words];
        var row = _row.AsSpan(0, words);
        row.Clear();
        Span<int> open = stackalloc int[MaxOpen];
        int m = 0, e = 0;
        unsafe
        {
            fixed (int* first = _h)
            fixed (uint* kp = bits)
            {
                var vmask = Vector256.Create(bmask);
                var vlow = Vector256.Create(low); var vstep = Vector256.Create(step);
                var z = ElementRandom.State4(stream, start);
                for (; e + 8 <= n; e += 8)
                {
                    var idx = (Avx.LoadVector256(kp + e) >> shift & vmask).AsInt32();
                    var rl = Avx2.GatherVector256(first, idx, 4);
                    var rh = Avx2.GatherVector256(first + 1, idx, 4) - Vector256<int>.One;
                    var u0 = ElementRandom.ToUniform(ElementRandom.Next53(ref z));
                    var u1 = ElementRandom.ToUniform(ElementRandom.Next53(ref z));
                    var k0 = Vector256.LessThan(u0, vlow + vstep * Avx.ConvertToVector256Double(rl.GetLower()));
                    var k1 = Vector256.LessThan(u1, vlow + vstep * Avx.ConvertToVector256Double(rl.GetUpper()));
                    var a0 = Vector256.LessThan(u0, vlow + vstep * Avx.ConvertToVector256Double(rh.GetLower()));
                    var a1 = Vector256.LessThan(u1, vlow + vstep * Avx.ConvertToVector256Double(rh.GetUpper()));
                    uint keep = k0.ExtractMostSignificantBits() | k1.ExtractMostSignificantBits() << 4;
                    uint between = (a0.ExtractMostSignificantBits() | a1.ExtractMostSignificantBits() << 4) & ~keep;
                    row[e >> 6] |= (ulong)keep << (e & 63);
                    while (between != 0)
                    {
                        if (m == MaxOpen) return false;
                        open[m++] = e + BitOperations.TrailingZeroCount(between);
                        between &= between - 1;
                    }
                }
            }
        }
        for (; e < n; e++)
        {
            int b = (int)((bits[e] >> shift) & bmask);
            double u = ElementRandom.Uniform(stream, start + e);
            if (u < low + step * h[b]) row[e >> 6] |= 1UL << (e & 63);
            else if (u < low + step * (h[b + 1] - 1))
            {
                if (m == MaxOpen) return false;
                open[m++] = e;
            }
        }
        // The undecided: their exact (stable) rank is the count of smaller magnitudes plus equal ones before them.
        for (int t = 0; t < m; t++)
        {
            int j = open[t];
            uint key = bits[j] & 0x7fffffffu;
            int rank = Below(bits[..j], key, orEqual: true) + Below(bits[j..], key, orEqual: false);
            if (ElementRandom.Uniform(stream, start + j) < low + step * rank) row[j >> 6] |= 1UL << (j & 63);
        }
        KeepMask.Apply(row, bits);
        if (mask is not null)
            for (int w = 0; w < words; w++) KeepMask.Or(mask, maskAt + w * 64, row[w], Math.Min(64, n - w * 64));
        return true;
    }

    // How many of the magnitudes are below key (or equal to it); magnitudes are below 2^31, so signed compares serve.
    private static int Below(ReadOnlySpan<uint> bits, uint key, bool orEqual)
    {
        int count = 0, q = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var vk = Vector256.Create((int)key); var abs = Vector256.Create(0x7fffffff);
            var acc = Vector256<int>.Zero;
            for (; q + 8 <= bits.Length; q += 8)
            {
                var x = Vector256.LoadUnsafe(ref MemoryMarshal.GetReference(bits), (nuint)q).AsInt32() & abs;
                acc -= orEqual ? Vector256.LessThanOrEqual(x, vk) : Vector256.LessThan(x, vk);
            }
            count = Vector256.Sum(acc);
        }
        for (; q < bits.Length; q++) { uint x = bits[q] & 0x7fffffffu; count += x < key || (orEqual && x == key) ? 1 : 0; }
        return count;
    }

    // Most undecided elements a row resolves by counting (each a vector pass over the row, about a thirtieth of the
    // sort's cost on 4096 elements) before it sorts instead.
    private const int MaxOpen = 48;
    private ulong[] _row = [];

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
