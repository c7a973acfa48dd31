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
        // log(sum(exp(x - max))) computed in double for stability on large vocabularies.
        double sum = 0;
        for (int i = 0; i < destination.Length; i++) sum += Math.Exp(destination[i]);
        TensorPrimitives.Subtract(destination, (float)Math.Log(sum), destination);
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
