using Consort.LlamaCpp;
using Consort.OpenAI;

namespace Consort.Config;

/// <summary>The backends a host registers by default: llama.cpp for GGUF files, the OpenAI-compatible client for endpoints.</summary>
public static class ModelProviders
{
    /// <summary>llama.cpp and OpenAI-compatible endpoints.</summary>
    public static IReadOnlyList<IModelProvider> Default { get; } = [new LlamaModelProvider(), new OpenAIModelProvider()];
}
