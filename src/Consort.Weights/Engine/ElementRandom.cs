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
    public static double Uniform(ulong stream, long index) => (Mix(stream + (ulong)index * 0x9E3779B97F4A7C15UL) >> 11) * (1.0 / (1UL << 53));

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
        for (int j = 0; j < bits.Length; j++)
        {
            ulong u = Mix(stream + (ulong)(start + j) * 0x9E3779B97F4A7C15UL) >> 11;
            bits[j] &= 0u - (u < limit ? 1u : 0u);
        }
    }

    /// <summary>
    /// Copies to the front of <paramref name="into"/> the elements of <paramref name="values"/> whose
    /// <see cref="Uniform"/> is below <paramref name="keep"/> (the sample <see cref="Drop"/> keeps), in order, without a
    /// branch per element; returns how many.
    /// </summary>
    public static int Sample(ulong stream, long start, double keep, ReadOnlySpan<float> values, Span<float> into)
    {
        if (into.Length < values.Length) throw new ArgumentException("destination too short");
        ulong limit = Limit(keep);
        int m = 0;
        for (int j = 0; j < values.Length; j++)
        {
            into[m] = values[j];
            m += (Mix(stream + (ulong)(start + j) * 0x9E3779B97F4A7C15UL) >> 11) < limit ? 1 : 0;
        }
        return m;
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
