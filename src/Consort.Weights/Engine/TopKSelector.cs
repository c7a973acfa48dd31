namespace Consort.Weights.Engine;

/// <summary>
/// Exact top-k by magnitude over a tensor streamed in chunks, in constant memory: a two-pass radix select over the
/// bits of |x| (high 16 bits, then low 16 bits within the boundary bucket) finds the k-th largest magnitude; then
/// elements above it are kept and, of those equal to it, the first ones in element order until k are kept.
/// </summary>
public sealed class TopKSelector
{
    private uint _threshold;
    private long _equalQuota;
    private long _quotaLeft;
    private bool _all, _none;

    /// <summary>Bits of |x| (sign cleared), which order like the magnitudes for finite floats.</summary>
    public static uint MagnitudeBits(float x) => BitConverter.SingleToUInt32Bits(x) & 0x7fffffffu;

    /// <summary>Finds the threshold for keeping <paramref name="k"/> of <paramref name="count"/> elements.</summary>
    /// <param name="k">How many to keep.</param>
    /// <param name="count">Element count.</param>
    /// <param name="scan">Streams the values: calls its argument with each chunk in order.</param>
    public static TopKSelector Build(long k, long count, Action<Action<ReadOnlySpan<float>>> scan)
    {
        var s = new TopKSelector();
        if (k >= count) { s._all = true; return s; }
        if (k <= 0) { s._none = true; return s; }
        var high = new long[65536];
        scan(chunk => { foreach (var v in chunk) high[MagnitudeBits(v) >> 16]++; });
        long above = 0;
        int bucket = 65535;
        for (; bucket >= 0; bucket--)
        {
            if (above + high[bucket] >= k) break;
            above += high[bucket];
        }
        var low = new long[65536];
        uint hb = (uint)bucket;
        scan(chunk => { foreach (var v in chunk) { uint b = MagnitudeBits(v); if (b >> 16 == hb) low[b & 0xffff]++; } });
        int lb = 65535;
        for (; lb >= 0; lb--)
        {
            if (above + low[lb] >= k) break;
            above += low[lb];
        }
        s._threshold = (hb << 16) | (uint)lb;
        s._equalQuota = k - above;
        s.Reset();
        return s;
    }

    /// <summary>Restarts the equal-value quota (call before each pass that applies the selection).</summary>
    public void Reset() => _quotaLeft = _equalQuota;

    /// <summary>Whether the next element (in order) is kept.</summary>
    public bool Keep(float x)
    {
        if (_all) return true;
        if (_none) return false;
        uint b = MagnitudeBits(x);
        if (b > _threshold) return true;
        if (b == _threshold && _quotaLeft > 0) { _quotaLeft--; return true; }
        return false;
    }
}
