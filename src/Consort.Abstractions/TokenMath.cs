using System.Numerics.Tensors;

namespace Consort;

/// <summary>Vectorized helpers over distributions.</summary>
public static class TokenMath
{
    /// <summary>Writes log-softmax of <paramref name="logits"/> into <paramref name="destination"/>.</summary>
    public static void LogSoftmax(ReadOnlySpan<float> logits, Span<float> destination)
    {
        float max = TensorPrimitives.Max(logits);
        TensorPrimitives.Subtract(logits, max, destination);
        // Vectorized exp into a scratch buffer; after subtracting the max every term is <= 1, so a float sum is exact enough.
        float[]? rented = null;
        Span<float> scratch = destination.Length <= 4096 ? stackalloc float[destination.Length] : (rented = System.Buffers.ArrayPool<float>.Shared.Rent(destination.Length)).AsSpan(0, destination.Length);
        TensorPrimitives.Exp(destination, scratch);
        float logSum = MathF.Log(TensorPrimitives.Sum(scratch));
        if (rented is not null) System.Buffers.ArrayPool<float>.Shared.Return(rented);
        TensorPrimitives.Subtract(destination, logSum, destination);
    }

    /// <summary>Writes softmax(<paramref name="logits"/> / temperature).</summary>
    public static void Softmax(ReadOnlySpan<float> logits, Span<float> destination, float temperature = 1f)
    {
        if (temperature <= 0) throw new ArgumentOutOfRangeException(nameof(temperature));
        TensorPrimitives.Divide(logits, temperature, destination);
        TensorPrimitives.SoftMax(destination, destination);
    }

    /// <summary>Index of the largest value (first on ties).</summary>
    public static int ArgMax(ReadOnlySpan<float> values) => TensorPrimitives.IndexOfMax(values);
}
