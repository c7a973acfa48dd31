using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Consort.Weights.Engine;

/// <summary>
/// Exact top-k by magnitude over a tensor streamed in chunks, in constant memory: a two-pass radix select over the
/// bits of |x| (high 15 bits, then low 16 bits within the boundary bucket) finds the k-th largest magnitude; then
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
        if (k <= 0 || k >= count) return FromLowHistogram(new Boundary(k, count, 0, 0), null);
        var high = new long[HighBuckets];
        scan(chunk => { foreach (var v in chunk) high[MagnitudeBits(v) >> 16]++; });
        var boundary = FindBoundary(k, count, high);
        var low = new long[LowBuckets];
        uint hb = (uint)boundary.Bucket;
        scan(chunk => { foreach (var v in chunk) { uint b = MagnitudeBits(v); if (b >> 16 == hb) low[b & 0xffff]++; } });
        return FromLowHistogram(boundary, low);
    }

    /// <summary>
    /// The same selection as <see cref="Build(long, long, Action{Action{ReadOnlySpan{float}}})"/> over values held in
    /// memory, through the pieces the merge engine uses on blocks: the high histogram, the boundary bucket, one
    /// <see cref="ScanRange"/> over that bucket and <see cref="FromCandidates"/>.
    /// </summary>
    public static TopKSelector Build(long k, ReadOnlySpan<float> values)
    {
        var bits = MemoryMarshal.Cast<float, uint>(values);
        var histogram = new int[HighBuckets];
        AddHighHistogram(bits, histogram);
        var boundary = FindBoundary(k, values.Length, histogram.Select(x => (long)x).ToArray());
        var inside = new uint[values.Length];
        int c = ScanRange(bits, boundary.Bucket, boundary.Bucket, out long above, inside);
        return FromCandidates(k, values.Length, above, inside[..c])
            ?? throw new InvalidOperationException("the boundary bucket must hold the k-th largest magnitude");
    }

    /// <summary>Buckets of the high histogram: the top 15 bits of |x| (sign cleared).</summary>
    public const int HighBuckets = 32768;

    /// <summary>Buckets of the low histogram: the low 16 bits of |x| within the boundary high bucket.</summary>
    public const int LowBuckets = 65536;

    /// <summary>Where the k-th largest magnitude lies after the high histogram: its high bucket and how many elements lie above that bucket.</summary>
    /// <param name="K">How many to keep.</param>
    /// <param name="Count">Element count.</param>
    /// <param name="Bucket">High bucket (top 15 bits of |x|) holding the k-th largest magnitude.</param>
    /// <param name="Above">Elements in higher buckets.</param>
    public readonly record struct Boundary(long K, long Count, int Bucket, long Above);

    /// <summary>Finds the boundary bucket of a selection of <paramref name="k"/> of <paramref name="count"/> from the high histogram.</summary>
    public static Boundary FindBoundary(long k, long count, long[] high)
    {
        if (k <= 0 || k >= count) return new Boundary(k, count, 0, 0);
        long above = 0;
        int bucket = HighBuckets - 1;
        for (; bucket >= 0; bucket--)
        {
            if (above + high[bucket] >= k) break;
            above += high[bucket];
        }
        return new Boundary(k, count, bucket, above);
    }

    /// <summary>Completes a selection from its boundary and the low histogram (low 16 bits) of the elements in the boundary bucket.</summary>
    public static TopKSelector FromLowHistogram(Boundary boundary, long[]? low)
    {
        var s = new TopKSelector();
        if (boundary.K >= boundary.Count) { s._all = true; return s; }
        if (boundary.K <= 0) { s._none = true; return s; }
        ArgumentNullException.ThrowIfNull(low);
        long above = boundary.Above, k = boundary.K, equal = 0;
        int lb = LowBuckets - 1;
        for (; lb >= 0; lb--)
        {
            equal = low[lb];
            if (above + equal >= k) break;
            above += equal;
        }
        s.SetThreshold(((uint)boundary.Bucket << 16) | (uint)lb, k - above, equal);
        return s;
    }

    /// <summary>The exact threshold magnitude bits (meaningful when <see cref="Partial"/>: elements with these bits share the quota).</summary>
    internal uint Threshold => _threshold;

    // When every element equal to the threshold is kept (the usual case), the rule becomes "magnitude >= threshold"
    // with no quota, so callers can skip counting ties per part; the selection is the same.
    private void SetThreshold(uint threshold, long quota, long equalCount)
    {
        if (quota == equalCount)
        {
            if (threshold == 0) { _all = true; return; }
            threshold--; quota = 0;
        }
        _threshold = threshold;
        _equalQuota = quota;
        Reset();
    }

    /// <summary>Adds the high-bucket counts of <paramref name="bits"/> (float bits) to <paramref name="histogram"/> (<see cref="HighBuckets"/> entries).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void AddHighHistogram(ReadOnlySpan<uint> bits, int[] histogram)
    {
        if (histogram.Length != HighBuckets) throw new ArgumentException($"histogram must have {HighBuckets} entries");
        ref int h = ref MemoryMarshal.GetArrayDataReference(histogram);
        ref uint b = ref MemoryMarshal.GetReference(bits);
        int j = 0, n = bits.Length;
        // Unrolled by four with unchecked indexing: (bits & 0x7fffffff) >> 16 is always below HighBuckets.
        for (; j + 3 < n; j += 4)
        {
            Unsafe.Add(ref h, (int)((Unsafe.Add(ref b, j) & 0x7fffffffu) >> 16))++;
            Unsafe.Add(ref h, (int)((Unsafe.Add(ref b, j + 1) & 0x7fffffffu) >> 16))++;
            Unsafe.Add(ref h, (int)((Unsafe.Add(ref b, j + 2) & 0x7fffffffu) >> 16))++;
            Unsafe.Add(ref h, (int)((Unsafe.Add(ref b, j + 3) & 0x7fffffffu) >> 16))++;
        }
        for (; j < n; j++) Unsafe.Add(ref h, (int)((Unsafe.Add(ref b, j) & 0x7fffffffu) >> 16))++;
    }

    /// <summary>
    /// From a high histogram of a sample of <paramref name="sampleCount"/> of the <paramref name="count"/> values,
    /// a range of high buckets that holds the <paramref name="k"/>-th largest magnitude with a wide margin (six
    /// binomial standard deviations plus 0.2% of the sample, against sampling whole blocks).
    /// </summary>
    public static (int Low, int High) EstimateRange(long k, long count, long[] sampleHigh, long sampleCount)
    {
        double q = (double)k / count, r = q * sampleCount;
        double margin = 6 * Math.Sqrt(sampleCount * q * (1 - q)) + 0.002 * sampleCount + 32;
        double top = Math.Max(0, r - margin), bottom = Math.Min(sampleCount, r + margin);
        long cum = 0;
        int hi = -1, lo = 0;
        for (int b = HighBuckets - 1; b >= 0; b--)
        {
            long next = cum + sampleHigh[b];
            if (hi < 0 && next > top) hi = b;
            if (next >= bottom) { lo = b; break; }
            cum = next;
        }
        if (hi < 0) hi = HighBuckets - 1;
        return (lo, Math.Max(lo, hi));
    }

    /// <summary>
    /// Counts the elements of <paramref name="bits"/> (float bits) whose high bucket is above <paramref name="high"/>
    /// and writes, in order, the magnitude bits of those within [<paramref name="low"/>, <paramref name="high"/>] to
    /// <paramref name="inside"/> (as long as <paramref name="bits"/>); returns how many are inside.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static int ScanRange(ReadOnlySpan<uint> bits, int low, int high, out long above, Span<uint> inside)
    {
        uint lo = (uint)low << 16, hiEnd = ((uint)high << 16) | 0xffffu;
        int j = 0, m = 0;
        long over = 0;
        if (Vector.IsHardwareAccelerated)
        {
            // Magnitudes are below 2^31, so signed compares (native on AVX2) order them.
            var vm = new Vector<int>(0x7fffffff); var vlo = new Vector<int>((int)lo - 1); var vhi = new Vector<int>((int)hiEnd);
            var acc = Vector<int>.Zero;
            var ints = MemoryMarshal.Cast<uint, int>(bits);
            for (; j <= ints.Length - Vector<int>.Count; j += Vector<int>.Count)
            {
                var mag = new Vector<int>(ints.Slice(j, Vector<int>.Count)) & vm;
                var up = Vector.GreaterThan(mag, vhi);
                acc -= up; // -(-1) per lane above the range
                if (Vector.EqualsAll(Vector.AndNot(Vector.GreaterThan(mag, vlo), up), Vector<int>.Zero)) continue;
                for (int q = 0; q < Vector<int>.Count; q++)
                {
                    uint b = bits[j + q] & 0x7fffffffu;
                    if (b >= lo && b <= hiEnd) inside[m++] = b;
                }
            }
            over = Vector.Sum(acc);
        }
        for (; j < bits.Length; j++)
        {
            uint b = bits[j] & 0x7fffffffu;
            if (b > hiEnd) over++;
            else if (b >= lo) inside[m++] = b;
        }
        above = over;
        return m;
    }

    /// <summary>
    /// The exact selection of <paramref name="k"/> of <paramref name="count"/> from <paramref name="above"/>, the
    /// number of elements above a bucket range, and <paramref name="inside"/>, the magnitude bits of every element in
    /// it; null when the k-th largest does not lie in the range.
    /// </summary>
    public static TopKSelector? FromCandidates(long k, long count, long above, uint[] inside)
    {
        if (k <= 0 || k >= count) return FromLowHistogram(new Boundary(k, count, 0, 0), null);
        if (above >= k || above + inside.Length < k) return null;
        var high = new int[HighBuckets];
        AddHighHistogram(inside, high);
        long a = above;
        int bucket = HighBuckets - 1;
        for (; bucket >= 0; bucket--)
        {
            if (a + high[bucket] >= k) break;
            a += high[bucket];
        }
        var low = new long[LowBuckets];
        foreach (var b in inside) if (b >> 16 == (uint)bucket) low[b & 0xffff]++;
        return FromLowHistogram(new Boundary(k, count, bucket, a), low);
    }

    /// <summary>The equal-value quota of a pass (how many elements equal to the threshold are kept, first in order).</summary>
    internal long EqualQuota => _equalQuota;

    /// <summary>Whether the selection needs the equal-value quota (only some of the elements equal to the threshold are kept).</summary>
    internal bool Partial => !_all && !_none && _equalQuota > 0;

    /// <summary>
    /// Sets the elements of <paramref name="values"/> that the selection drops to 0, in place, consuming
    /// <paramref name="quota"/> for elements equal to the threshold in order (as <see cref="Keep(float)"/> does).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal void Mask(Span<float> values, ref long quota)
    {
        if (_all) return;
        if (_none) { values.Clear(); return; }
        var bits = MemoryMarshal.Cast<float, uint>(values);
        int j = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var vm = new Vector<uint>(0x7fffffffu); var vt = new Vector<uint>(_threshold);
            for (; j <= bits.Length - Vector<uint>.Count; j += Vector<uint>.Count)
            {
                var slot = bits.Slice(j, Vector<uint>.Count);
                var v = new Vector<uint>(slot);
                var mag = v & vm;
                if (quota > 0 && Vector.EqualsAny(mag, vt))
                {
                    for (int q = 0; q < Vector<uint>.Count; q++) if (!Keep(BitConverter.UInt32BitsToSingle(slot[q]), ref quota)) slot[q] = 0;
                    continue;
                }
                (v & Vector.GreaterThan(mag, vt)).CopyTo(slot);
            }
        }
        for (; j < bits.Length; j++) if (!Keep(BitConverter.UInt32BitsToSingle(bits[j]), ref quota)) bits[j] = 0;
    }

    /// <summary>As <see cref="Keep(float)"/>, with the equal-value quota held by the caller.</summary>
    internal bool Keep(float x, ref long quota)
    {
        if (_all) return true;
        if (_none) return false;
        uint b = MagnitudeBits(x);
        if (b > _threshold) return true;
        if (b == _threshold && quota > 0) { quota--; return true; }
        return false;
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
