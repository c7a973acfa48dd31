using System.Text.Json.Nodes;
using Consort.Config;
using Consort.LlamaCpp;
using Consort.Methods;
using Consort.OpenAI;
using Microsoft.Extensions.AI;

namespace Consort.Embeddings;

/// <summary>
/// The host's <see cref="IEmbeddingSources"/>: <c>"minilm"</c> through the optional plugin, model references through
/// <see cref="ModelReferences"/> (a GGUF file embedded by llama.cpp; an endpoint entry through its /v1/embeddings).
/// Also a minimal service provider, for sessions that need nothing else.
/// </summary>
public sealed class EmbeddingSources : IEmbeddingSources, IServiceProvider
{
    /// <summary>The shared instance.</summary>
    public static EmbeddingSources Default { get; } = new();

    /// <inheritdoc />
    public object? GetService(Type serviceType) => serviceType.IsInstanceOfType(this) ? this : null;

    /// <summary>"minilm", or MoCo's name for the same model (its embedding_model_name default).</summary>
    public static bool IsMiniLm(string name) =>
        name.Equals("minilm", StringComparison.OrdinalIgnoreCase) || name.Equals("sentence-transformers/all-MiniLM-L6-v2", StringComparison.OrdinalIgnoreCase)
        || name.Equals("all-MiniLM-L6-v2", StringComparison.OrdinalIgnoreCase);

    /// <inheritdoc />
    public async Task<(IEmbeddingGenerator<string, Embedding<float>> Generator, string Identity)> CreateAsync(JsonNode? spec, string baseDirectory, CancellationToken cancellationToken)
    {
        if (spec is null || (spec is JsonValue v && v.TryGetValue<string>(out var s) && IsMiniLm(s)))
            return (await Task.Run(MiniLmEmbeddings.Create, cancellationToken).ConfigureAwait(false), MiniLmEmbeddings.Identity);
        switch (ModelReferences.Parse(spec, baseDirectory, where: "embedding"))
        {
            case GgufModelSpec g:
                if (g.Reference.StartsWith("hf:", StringComparison.OrdinalIgnoreCase))
                    await ModelSession.PrepareAsync([g], cancellationToken: cancellationToken).ConfigureAwait(false);
                if (!File.Exists(g.Path)) throw new ConfigException($"embedding: model file not found: {g.Path}");
                var info = new FileInfo(g.Path);
                return (new LlamaEmbeddingGenerator(g.Path, g.Name), $"gguf:{info.Name}:{info.Length}");
            case EndpointModelSpec e:
                var o = OpenAIModelOptions.FromJson(e.Entry, e.Name);
                return (OpenAIEmbeddingGenerator.Create(o), $"openai:{o.BaseUrl}#{o.Model}");
            default:
                throw new ConfigException($"embedding: {spec.ToJsonString()} is a collaboration; an embedding is \"minilm\", a GGUF model or an endpoint");
        }
    }
}
