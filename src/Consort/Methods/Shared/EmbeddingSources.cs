using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;

namespace Consort.Methods;

/// <summary>
/// Embedding generators the host can make, by a config value: <c>"minilm"</c> (offline all-MiniLM-L6-v2), a GGUF
/// model reference (path, <c>zoo:</c>, <c>hf:</c>; llama.cpp's mean-pooled embeddings), or an endpoint object
/// (<c>{"base_url", "model", ...}</c>; its <c>/v1/embeddings</c>). The host registers one in the session's services;
/// methods ask for it with <c>context.GetService&lt;IEmbeddingSources&gt;()</c>.
/// </summary>
public interface IEmbeddingSources
{
    /// <summary>Creates the generator for <paramref name="spec"/> (null = the default, MiniLM); the caller disposes it.
    /// Also names it for router files.</summary>
    /// <exception cref="ConfigException">The spec names nothing usable (a missing file, the optional MiniLM build absent).</exception>
    Task<(IEmbeddingGenerator<string, Embedding<float>> Generator, string Identity)> CreateAsync(JsonNode? spec, string baseDirectory, CancellationToken cancellationToken);
}
