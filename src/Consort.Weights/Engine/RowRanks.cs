namespace Consort.Weights.Engine;

/// <summary>
/// Ranks of magnitudes within a row by an LSD radix sort of |x|'s bits (three digits of 11, 10 and 10 bits; stable, so
/// equal magnitudes rank in element order), in linear time: DELLA ranks every row of every task vector. Key and
/// element index travel packed in one 64-bit word (one load and one store per element and digit), and a digit that
/// every key of the row shares (often the low bits of deltas between F16/BF16 weights) is skipped.
/// </summary>
public sealed class RowRanks
{
    private ulong[] _a = [], _b = [];
    private readonly int[] _h = new int[2048 + 1024 + 1024];

    /// <summary>Writes the 0-based rank of |row[j]| among the row's magnitudes (ascending) into <paramref name="rank"/>.</summary>
    public void Rank(ReadOnlySpan<float> row, Span<int> rank)
    {
        int n = row.Length;
        if (n == 0) return;
        if (_a.Length < n) { _a = new ulong[n]; _b = new ulong[n]; }
        var h = _h;
        Array.Clear(h);
        Span<ulong> a = _a.AsSpan(0, n), b = _b.AsSpan(0, n);
        for (int j = 0; j < a.Length; j++)
        {
            uint k = BitConverter.SingleToUInt32Bits(row[j]) & 0x7fffffffu;
            a[j] = (ulong)k << 32 | (uint)j;
            h[(int)(k & 2047)]++; h[2048 + (int)((k >> 11) & 1023)]++; h[3072 + (int)(k >> 21)]++;
        }
        var first = (uint)(a[0] >> 32);
        bool skip0 = h[(int)(first & 2047)] == n, skip1 = h[2048 + (int)((first >> 11) & 1023)] == n, skip2 = h[3072 + (int)(first >> 21)] == n;
        Prefix(h.AsSpan(0, 2048)); Prefix(h.AsSpan(2048, 1024)); Prefix(h.AsSpan(3072, 1024));
        // Each pass that runs moves the words from one buffer to the other; track where they are.
        if (!skip0) { Scatter(a, b, h.AsSpan(0, 2048), 32, 2047); Swap(ref a, ref b); }
        if (!skip1) { Scatter(a, b, h.AsSpan(2048, 1024), 43, 1023); Swap(ref a, ref b); }
        if (!skip2) { Scatter(a, b, h.AsSpan(3072, 1024), 53, 1023); Swap(ref a, ref b); }
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
