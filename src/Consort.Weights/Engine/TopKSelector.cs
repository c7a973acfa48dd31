using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

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

    /// <summary>
    /// The same selection as <see cref="Build(long, long, Action{Action{ReadOnlySpan{float}}})"/> over values held in
    /// memory: histograms are built by <paramref name="parallelism"/> workers over contiguous parts and summed, so
    /// the threshold and quota are exactly those of the streaming build.
    /// </summary>
    public static TopKSelector Build(long k, ReadOnlySpan<float> values, int parallelism)
    {
        var s = new TopKSelector();
        long count = values.Length;
        if (k >= count) { s._all = true; return s; }
        if (k <= 0) { s._none = true; return s; }
        var parts = Parts(values.Length, parallelism);
        var bits = MemoryMarshal.Cast<float, uint>(values);
        unsafe
        {
            fixed (uint* p0 = bits)
            {
                nint p = (nint)p0;
                var highs = new int[parts.Length][];
                Parallel.For(0, parts.Length, new ParallelOptions { MaxDegreeOfParallelism = parallelism }, w =>
                {
                    highs[w] = HighHistogram(new ReadOnlySpan<uint>((uint*)p + parts[w].Start, parts[w].Length));
                });
                long above = 0;
                int bucket = 32767;
                for (; bucket >= 0; bucket--)
                {
                    long c = 0;
                    foreach (var h in highs) c += h[bucket];
                    if (above + c >= k) break;
                    above += c;
                }
                uint hb = (uint)bucket;
                var lows = new int[parts.Length][];
                Parallel.For(0, parts.Length, new ParallelOptions { MaxDegreeOfParallelism = parallelism }, w =>
                {
                    lows[w] = LowHistogram(new ReadOnlySpan<uint>((uint*)p + parts[w].Start, parts[w].Length), hb);
                });
                int lb = 65535;
                for (; lb >= 0; lb--)
                {
                    long c = 0;
                    foreach (var l in lows) c += l[lb];
                    if (above + c >= k) break;
                    above += c;
                }
                s._threshold = (hb << 16) | (uint)lb;
                s._equalQuota = k - above;
            }
        }
        s.Reset();
        return s;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int[] HighHistogram(ReadOnlySpan<uint> span)
    {
        // Two interleaved histograms halve the stalls on runs of equal buckets.
        var h0 = new int[32768]; var h1 = new int[32768];
        int j = 0;
        for (; j + 1 < span.Length; j += 2) { h0[(int)((span[j] & 0x7fffffffu) >> 16)]++; h1[(int)((span[j + 1] & 0x7fffffffu) >> 16)]++; }
        if (j < span.Length) h0[(int)((span[j] & 0x7fffffffu) >> 16)]++;
        for (int i = 0; i < h0.Length; i++) h0[i] += h1[i];
        return h0;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int[] LowHistogram(ReadOnlySpan<uint> span, uint hb)
    {
        var l = new int[65536];
        int j = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var vm = new Vector<uint>(0x7fffffffu); var vh = new Vector<uint>(hb);
            for (; j <= span.Length - Vector<uint>.Count; j += Vector<uint>.Count)
            {
                var v = new Vector<uint>(span.Slice(j, Vector<uint>.Count));
                if (Vector.EqualsAny(Vector.ShiftRightLogical(v & vm, 16), vh))
                    for (int q = 0; q < Vector<uint>.Count; q++) { uint b = span[j + q] & 0x7fffffffu; if (b >> 16 == hb) l[b & 0xffff]++; }
            }
        }
        for (; j < span.Length; j++) { uint b = span[j] & 0x7fffffffu; if (b >> 16 == hb) l[b & 0xffff]++; }
        return l;
    }

    /// <summary>Splits [0, count) into up to <paramref name="parts"/> contiguous ranges.</summary>
    internal static (int Start, int Length)[] Parts(int count, int parts)
    {
        parts = Math.Max(1, Math.Min(parts, count / 4096 + 1));
        var r = new (int, int)[parts];
        for (int i = 0; i < parts; i++)
        {
            int a = (int)((long)count * i / parts), b = (int)((long)count * (i + 1) / parts);
            r[i] = (a, b - a);
        }
        return r;
    }

    /// <summary>The equal-value quota of a pass (how many elements equal to the threshold are kept, first in order).</summary>
    internal long EqualQuota => _equalQuota;

    /// <summary>Whether the selection needs the equal-value quota (it neither keeps nor drops everything).</summary>
    internal bool Partial => !_all && !_none;

    /// <summary>How many of <paramref name="values"/> have exactly the threshold magnitude.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal long CountEqual(ReadOnlySpan<float> values)
    {
        if (!Partial) return 0;
        var bits = MemoryMarshal.Cast<float, uint>(values);
        long n = 0;
        int j = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var vm = new Vector<uint>(0x7fffffffu); var vt = new Vector<uint>(_threshold);
            var acc = Vector<uint>.Zero;
            for (; j <= bits.Length - Vector<uint>.Count; j += Vector<uint>.Count)
                acc -= Vector.Equals(new Vector<uint>(bits.Slice(j, Vector<uint>.Count)) & vm, vt); // -(-1) per equal lane
            Vector.Widen(acc, out var lo, out var hi);
            n = (long)Vector.Sum(lo + hi);
        }
        for (; j < bits.Length; j++) if ((bits[j] & 0x7fffffffu) == _threshold) n++;
        return n;
    }

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
                if (Vector.EqualsAny(mag, vt))
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
