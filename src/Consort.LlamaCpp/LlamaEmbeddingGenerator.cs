using LLama;
using LLama.Common;
using LLama.Native;
using Microsoft.Extensions.AI;

namespace Consort.LlamaCpp;

/// <summary>
/// Embeddings of a GGUF model through llama.cpp: the mean of the last layer's hidden states over the text's tokens,
/// L2-normalized (the vectors <c>/v1/embeddings</c> returns). Shares the loaded weights with the model's chat and token
/// access; one text is embedded at a time (llama.cpp contexts are not thread-safe). Texts longer than the context are
/// refused with a message naming both lengths.
/// </summary>
public sealed class LlamaEmbeddingGenerator : IEmbeddingGenerator<string, Embedding<float>>
{
    private readonly LlamaSharedWeights _weights;
    private readonly LLamaEmbedder _embedder;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly int _contextSize;
    private int _disposed;

    /// <summary>Loads (or reuses) the weights of <paramref name="path"/> and creates an embedding context.</summary>
    public LlamaEmbeddingGenerator(string path, string name, int? contextSize = null, int? threads = null)
    {
        _weights = LlamaSharedWeights.Acquire(path);
        try
        {
            Name = name;
            int trained = _weights.Info.ContextLength > 0 ? _weights.Info.ContextLength : 512;
            _contextSize = Math.Min(contextSize ?? trained, Math.Max(trained, 8));
            var p = new ModelParams(_weights.Key)
            {
                ContextSize = (uint)_contextSize,
                BatchSize = (uint)_contextSize,
                UBatchSize = (uint)_contextSize, // the whole text in one micro-batch, as pooled embeddings need
                Embeddings = true,
                PoolingType = LLamaPoolingType.Mean,
                GpuLayerCount = 0,
            };
            if (threads is { } t) p.Threads = t;
            _embedder = new LLamaEmbedder(_weights.Weights, p);
        }
        catch (Exception e)
        {
            _weights.Release();
            if (e is ConsortException) throw;
            throw new ConsortException($"model '{name}': llama.cpp could not create an embedding context ({e.Message})", e);
        }
        Metadata = new EmbeddingGeneratorMetadata("consort-llama.cpp", null, name, _embedder.EmbeddingSize);
    }

    /// <summary>Model name.</summary>
    public string Name { get; }
    /// <summary>Vector length.</summary>
    public int Dimensions => _embedder.EmbeddingSize;
    /// <summary>Longest text in tokens.</summary>
    public int ContextSize => _contextSize;
    /// <summary>What this generator is.</summary>
    public EmbeddingGeneratorMetadata Metadata { get; }

    /// <inheritdoc />
    public async Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        var texts = values.ToList();
        var result = new GeneratedEmbeddings<Embedding<float>>(texts.Count);
        long tokens = 0;
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            foreach (var text in texts)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int n = _weights.Weights.Tokenize(text, true, false, System.Text.Encoding.UTF8).Length;
                if (n > _contextSize)
                    throw new ConsortException($"model '{Name}': text of {n} tokens exceeds the embedding context of {_contextSize} tokens");
                tokens += n;
                var vectors = await _embedder.GetEmbeddings(text, cancellationToken).ConfigureAwait(false);
                var v = vectors.Count == 1 ? vectors[0] : Mean(vectors);
                Normalize(v);
                result.Add(new Embedding<float>(v) { ModelId = Name, CreatedAt = DateTimeOffset.UtcNow });
            }
        }
        finally
        {
            _gate.Release();
        }
        result.Usage = new UsageDetails { InputTokenCount = tokens, TotalTokenCount = tokens };
        return result;
    }

    private static float[] Mean(IReadOnlyList<float[]> rows)
    {
        var m = new float[rows[0].Length];
        foreach (var r in rows)
            for (int i = 0; i < m.Length; i++) m[i] += r[i];
        for (int i = 0; i < m.Length; i++) m[i] /= rows.Count;
        return m;
    }

    private static void Normalize(float[] v)
    {
        double s = 0;
        foreach (var x in v) s += x * (double)x;
        if (s <= 0) return;
        float inv = (float)(1 / Math.Sqrt(s));
        for (int i = 0; i < v.Length; i++) v[i] *= inv;
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is not null ? null : serviceType == typeof(EmbeddingGeneratorMetadata) ? Metadata : serviceType.IsInstanceOfType(this) ? this : null;

    /// <inheritdoc />
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _embedder.Dispose();
        _weights.Release();
        _gate.Dispose();
    }
}
