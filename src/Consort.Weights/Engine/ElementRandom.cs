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

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
