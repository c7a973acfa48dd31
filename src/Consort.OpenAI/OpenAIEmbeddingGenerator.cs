using System.ClientModel;
using System.ClientModel.Primitives;
using Microsoft.Extensions.AI;
using OpenAI;

namespace Consort.OpenAI;

/// <summary>
/// Embeddings from an OpenAI-compatible endpoint's <c>/v1/embeddings</c> (vLLM, llama.cpp's server, Ollama, OpenAI,
/// <c>consort serve</c>), as MEAI's <see cref="IEmbeddingGenerator{TInput, TEmbedding}"/>: the SDK's embedding client
/// over the same resilient HttpClient (retries, timeouts, circuit breaker) that chat models use.
/// </summary>
public static class OpenAIEmbeddingGenerator
{
    /// <summary>
    /// Creates the generator for model <see cref="OpenAIModelOptions.Model"/>; nothing is sent until the first call.
    /// A named <see cref="OpenAIModelOptions.ApiKeyEnv"/> that is unset is a <see cref="ConfigException"/>.
    /// </summary>
    public static IEmbeddingGenerator<string, Embedding<float>> Create(OpenAIModelOptions o)
    {
        ArgumentNullException.ThrowIfNull(o);
        o.Validate();
        string credential = "no-key"; // the SDK insists on one; servers without auth ignore it
        if (!string.IsNullOrEmpty(o.ApiKeyEnv))
        {
            credential = Environment.GetEnvironmentVariable(o.ApiKeyEnv) ?? "";
            if (credential.Length == 0) throw new ConfigException($"embedding endpoint '{o.Name}': environment variable '{o.ApiKeyEnv}' (its API key) is not set");
        }
        var http = ResilientHttp.CreateClient(o);
        var client = new OpenAIClient(new ApiKeyCredential(credential), new OpenAIClientOptions
        {
            Endpoint = new Uri(o.BaseUrl),
            Transport = new HttpClientPipelineTransport(http),
            RetryPolicy = new ClientRetryPolicy(0),
            NetworkTimeout = o.EffectiveTotalTimeout + TimeSpan.FromSeconds(5),
        });
        return new Owning(client.GetEmbeddingClient(o.Model).AsIEmbeddingGenerator(), http);
    }

    // Disposes the HttpClient with the generator.
    private sealed class Owning(IEmbeddingGenerator<string, Embedding<float>> inner, HttpClient http) : DelegatingEmbeddingGenerator<string, Embedding<float>>(inner)
    {
        protected override void Dispose(bool disposing)
        {
            base.Dispose(disposing);
            if (disposing) http.Dispose();
        }
    }
}
