namespace Consort.Weights.Engine;

/// <summary>
/// Ranks of magnitudes within a row by an LSD radix sort of |x|'s bits (three digits of 11, 10 and 10 bits; stable, so
/// equal magnitudes rank in element order), in linear time: DELLA ranks every row of every task vector.
/// </summary>
public sealed class RowRanks
{
    private uint[] _keys = [], _keys2 = [];
    private int[] _index = [], _index2 = [];
    private readonly int[] _h0 = new int[2048], _h1 = new int[1024], _h2 = new int[1024];

    /// <summary>Writes the 0-based rank of |row[j]| among the row's magnitudes (ascending) into <paramref name="rank"/>.</summary>
    public void Rank(ReadOnlySpan<float> row, Span<int> rank)
    {
        int n = row.Length;
        if (_keys.Length < n) { _keys = new uint[n]; _keys2 = new uint[n]; _index = new int[n]; _index2 = new int[n]; }
        Array.Clear(_h0); Array.Clear(_h1); Array.Clear(_h2);
        for (int j = 0; j < n; j++)
        {
            uint k = BitConverter.SingleToUInt32Bits(row[j]) & 0x7fffffffu;
            _keys[j] = k;
            _index[j] = j;
            _h0[k & 2047]++; _h1[(k >> 11) & 1023]++; _h2[k >> 21]++;
        }
        Prefix(_h0); Prefix(_h1); Prefix(_h2);
        Scatter(_keys, _index, _keys2, _index2, n, _h0, 0, 2047);
        Scatter(_keys2, _index2, _keys, _index, n, _h1, 11, 1023);
        Scatter(_keys, _index, _keys2, _index2, n, _h2, 21, 1023);
        for (int p = 0; p < n; p++) rank[_index2[p]] = p;
    }

    private static void Prefix(int[] h)
    {
        int sum = 0;
        for (int i = 0; i < h.Length; i++) { int c = h[i]; h[i] = sum; sum += c; }
    }

    private static void Scatter(uint[] keys, int[] index, uint[] keysOut, int[] indexOut, int n, int[] offsets, int shift, uint mask)
    {
        for (int j = 0; j < n; j++)
        {
            uint k = keys[j];
            int at = offsets[(k >> shift) & mask]++;
            keysOut[at] = k;
            indexOut[at] = index[j];
        }
    }
}
