using System.Numerics;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Consort.Weights.Engine;

/// <summary>
/// Counter-based random numbers: the value for (seed, stream, element) does not depend on chunking or order, so
/// random merges are deterministic for a seed however the tensor is streamed.
/// </summary>
public static class ElementRandom
{
    /// <summary>A stream id from a tensor name and model index.</summary>
    public static ulong Stream(int seed, string tensor, int model)
    {
        ulong h = 14695981039346656037UL;
        foreach (char c in tensor) { h ^= c; h *= 1099511628211UL; }
        return Mix(h ^ ((ulong)(uint)seed << 32) ^ (ulong)(uint)model * 0x9E3779B97F4A7C15UL);
    }

    /// <summary>Uniform in [0, 1) for element <paramref name="index"/> of <paramref name="stream"/>.</summary>
    public static double Uniform(ulong stream, long index) => Bits53(stream, index) * (1.0 / (1UL << 53));

    // The 53 random bits of element `index` (Uniform before scaling).
    private static ulong Bits53(ulong stream, long index) => Mix(stream + (ulong)index * Golden) >> 11;

    /// <summary>
    /// Zeroes each element j of <paramref name="values"/> (element <paramref name="start"/> + j of the stream) whose
    /// <see cref="Uniform"/> is at least <paramref name="keep"/>, as the per-element test would, but on the 53-bit
    /// integers (u·2^-53 &gt;= p exactly when u &gt;= ⌈p·2^53⌉) and without a branch: the decisions are random, so a
    /// branch would mispredict on about every other element.
    /// </summary>
    public static void Drop(ulong stream, long start, double keep, Span<float> values)
    {
        ulong limit = Limit(keep);
        var bits = System.Runtime.InteropServices.MemoryMarshal.Cast<float, uint>(values);
        int j = 0;
        if (Wide)
        {
            var vlimit = Vector512.Create(limit);
            for (; j + 8 <= bits.Length; j += 8)
            {
                var kept = Avx512F.ConvertToVector256UInt32(Vector512.LessThan(Bits53x8(stream, start + j), vlimit));
                (Vector256.LoadUnsafe(ref bits[j]) & kept).StoreUnsafe(ref bits[j]);
            }
        }
        else if (Narrow)
        {
            var vlimit = Vector256.Create(limit).AsInt64();
            var z = State4(stream, start);
            for (; j + 8 <= bits.Length; j += 8)
            {
                // Both sides are below 2^63, so the signed compare of AVX2 is the unsigned one.
                var k0 = Vector256.LessThan(Next53(ref z).AsInt64(), vlimit).AsUInt64();
                var k1 = Vector256.LessThan(Next53(ref z).AsInt64(), vlimit).AsUInt64();
                (Vector256.LoadUnsafe(ref bits[j]) & Vector256.Narrow(k0, k1)).StoreUnsafe(ref bits[j]);
            }
        }
        for (; j < bits.Length; j++) bits[j] &= 0u - (Bits53(stream, start + j) < limit ? 1u : 0u);
    }

    /// <summary>
    /// A Bernoulli(<paramref name="keep"/>) sample of <paramref name="values"/> drawn by its gaps: the distance to the
    /// next kept element is geometric, one random number per kept element instead of one per element (a sample of a
    /// million from a hundred million costs a millionth of the decisions). The same elements for the same
    /// (stream, start, keep), whatever else is sampled; returns how many were written to <paramref name="into"/>.
    /// The draws of a call use stream indices from 2·start on, so calls for disjoint runs of at least one element
    /// (rows) never share a draw.
    /// </summary>
    public static int SampleByGaps(ulong stream, long start, double keep, ReadOnlySpan<float> values, Span<float> into)
    {
        if (into.Length < values.Length) throw new ArgumentException("destination too short");
        if (keep >= 1) { values.CopyTo(into); return values.Length; }
        if (keep <= 0 || values.IsEmpty) return 0;
        double perLog = 1 / Math.Log(1 - keep); // negative
        long draw = 2 * start;
        int m = 0;
        // P(gap = g) = (1 − keep)^g · keep, for g = 0, 1, ...: floor(ln U / ln(1 − keep)) with U in (0, 1]. The draws
        // do not depend on the gaps, so with AVX2 four gaps come at once (the logarithms were half of this method's time).
        Span<double> gaps = stackalloc double[4];
        int have = 0, next = 0;
        var z = Narrow ? State4(stream, draw) : default;
        for (long j = -1; ;)
        {
            if (next == have)
            {
                if (Narrow)
                {
                    Vector256.Floor(Vector256.Log(Vector256<double>.One - ToUniform(Next53(ref z))) * Vector256.Create(perLog)).CopyTo(gaps);
                    have = 4;
                }
                else { gaps[0] = Math.Floor(Math.Log(1 - Uniform(stream, draw++)) * perLog); have = 1; }
                next = 0;
            }
            double gap = gaps[next++];
            if (gap >= values.Length - j - 1) return m;
            j += 1 + (long)gap;
            into[m++] = values[(int)j];
        }
    }

    /// <summary>
    /// Keeps element j of <paramref name="bits"/> (element <paramref name="start"/> + j of the stream; the bits of a
    /// float) when <see cref="Uniform"/> &lt; <paramref name="low"/> + <paramref name="step"/> · ranks[j] (the same
    /// double operations as that test), zeroing the others; kept elements also set bit <paramref name="maskAt"/> + j
    /// of <paramref name="mask"/> when given. DELLA's rank-dependent keep probabilities.
    /// </summary>
    public static void KeepByRank(ulong stream, long start, double low, double step, ReadOnlySpan<int> ranks, Span<uint> bits, ulong[]? mask, int maskAt)
    {
        if (ranks.Length < bits.Length) throw new ArgumentException("ranks too short");
        int j = 0;
        if (Wide)
        {
            var vlow = Vector512.Create(low); var vstep = Vector512.Create(step); var scale = Vector512.Create(1.0 / (1UL << 53));
            for (; j + 8 <= bits.Length; j += 8)
            {
                var u = Vector512.ConvertToDouble(Bits53x8(stream, start + j)) * scale;
                var p = vlow + vstep * Avx512F.ConvertToVector512Double(Vector256.LoadUnsafe(ref System.Runtime.InteropServices.MemoryMarshal.GetReference(ranks), (nuint)j));
                var keep = Vector512.LessThan(u, p).AsUInt64();
                (Vector256.LoadUnsafe(ref bits[j]) & Avx512F.ConvertToVector256UInt32(keep)).StoreUnsafe(ref bits[j]);
                if (mask is not null) KeepMask.Or(mask, maskAt + j, Avx512F.ConvertToVector256UInt32(keep).ExtractMostSignificantBits(), 8);
            }
        }
        else if (Narrow)
        {
            var vlow = Vector256.Create(low); var vstep = Vector256.Create(step);
            ref int r0 = ref System.Runtime.InteropServices.MemoryMarshal.GetReference(ranks);
            var z = State4(stream, start);
            for (; j + 8 <= bits.Length; j += 8)
            {
                var p0 = vlow + vstep * Avx.ConvertToVector256Double(Vector128.LoadUnsafe(ref r0, (nuint)j));
                var p1 = vlow + vstep * Avx.ConvertToVector256Double(Vector128.LoadUnsafe(ref r0, (nuint)j + 4));
                var k0 = Vector256.LessThan(ToUniform(Next53(ref z)), p0).AsUInt64();
                var k1 = Vector256.LessThan(ToUniform(Next53(ref z)), p1).AsUInt64();
                var keep = Vector256.Narrow(k0, k1);
                (Vector256.LoadUnsafe(ref bits[j]) & keep).StoreUnsafe(ref bits[j]);
                if (mask is not null) KeepMask.Or(mask, maskAt + j, keep.ExtractMostSignificantBits(), 8);
            }
        }
        for (; j < bits.Length; j++)
        {
            uint keep = Uniform(stream, start + j) < low + step * ranks[j] ? 1u : 0u;
            bits[j] &= 0u - keep;
            if (mask is not null) mask[(maskAt + j) >> 6] |= (ulong)keep << ((maskAt + j) & 63);
        }
    }

    // The vector paths need 64-bit lane multiplies and conversions (AVX-512 DQ); they give the scalar path's values.
    private static readonly bool Wide = Vector512.IsHardwareAccelerated && Avx512DQ.IsSupported;
    private const ulong Golden = 0x9E3779B97F4A7C15UL;

    // Bits53 of elements first .. first + 7.
    private static Vector512<ulong> Bits53x8(ulong stream, long first)
    {
        var index = Vector512.Create((ulong)first) + Vector512.Create(0UL, 1, 2, 3, 4, 5, 6, 7);
        var z = Vector512.Create(stream) + index * Vector512.Create(Golden);
        z = (z ^ Vector512.ShiftRightLogical(z, 30)) * Vector512.Create(0xBF58476D1CE4E5B9UL);
        z = (z ^ Vector512.ShiftRightLogical(z, 27)) * Vector512.Create(0x94D049BB133111EBUL);
        return Vector512.ShiftRightLogical(z ^ Vector512.ShiftRightLogical(z, 31), 11);
    }

    // Without AVX-512 (most laptops, some VMs): four lanes of AVX2, 64-bit products from 32-bit ones.
    private static readonly bool Narrow = Avx2.IsSupported;

    // a·c mod 2^64 per lane: lo(a)·lo(c) + (hi(a)·lo(c) + lo(a)·hi(c))·2^32.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static Vector256<ulong> Times(Vector256<ulong> a, ulong c)
    {
        var cl = Vector256.Create(c & 0xffffffffUL).AsUInt32(); var ch = Vector256.Create(c >> 32).AsUInt32();
        var cross = Avx2.Multiply(Avx2.ShiftRightLogical(a, 32).AsUInt32(), cl) + Avx2.Multiply(a.AsUInt32(), ch);
        return Avx2.Multiply(a.AsUInt32(), cl) + Avx2.ShiftLeftLogical(cross, 32);
    }

    // The generator's state (before mixing) of elements first .. first + 3. Runs of elements step it by 4·Golden
    // (Next53), which saves one of the three emulated 64-bit products per four elements.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal static Vector256<ulong> State4(ulong stream, long first) =>
        Vector256.Create(stream) + Times(Vector256.Create((ulong)first) + Vector256.Create(0UL, 1, 2, 3), Golden);

    // Bits53 of the four elements of state z, which then moves on to the next four.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal static Vector256<ulong> Next53(ref Vector256<ulong> z)
    {
        var x = z;
        z += Vector256.Create(unchecked(4 * Golden));
        x = Times(x ^ Vector256.ShiftRightLogical(x, 30), 0xBF58476D1CE4E5B9UL);
        x = Times(x ^ Vector256.ShiftRightLogical(x, 27), 0x94D049BB133111EBUL);
        return Vector256.ShiftRightLogical(x ^ Vector256.ShiftRightLogical(x, 31), 11);
    }

    // 53-bit integers to uniforms, exactly: each is converted as its two halves (each exact through the 2^52 exponent
    // trick), whose sum is exact because it is representable.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal static Vector256<double> ToUniform(Vector256<ulong> x)
    {
        var magic = Vector256.Create(0x4330000000000000UL);
        var two52 = Vector256.Create(4503599627370496.0);
        var hi = (Vector256.ShiftRightLogical(x, 32) | magic).AsDouble() - two52;
        var lo = ((x & Vector256.Create(0xffffffffUL)) | magic).AsDouble() - two52;
        return (hi * Vector256.Create(4294967296.0) + lo) * Vector256.Create(1.0 / (1UL << 53));
    }

    // u·2^-53 < p exactly when u < ⌈p·2^53⌉ (scaling by a power of two is exact).
    private static ulong Limit(double keep) => keep >= 1 ? 1UL << 53 : keep <= 0 ? 0 : (ulong)Math.Ceiling(keep * (1UL << 53));

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
