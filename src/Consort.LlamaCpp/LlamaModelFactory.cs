using Consort.Middleware;
using Microsoft.Extensions.AI;

namespace Consort.LlamaCpp;

/// <summary>Loads GGUF models through llama.cpp as <see cref="ConsortModel"/>s (chat + full-logit token access).</summary>
public static class LlamaModelFactory
{
    /// <summary>
    /// Validates the file in managed code, loads (or reuses) its weights, and creates a context with
    /// <see cref="LlamaModelOptions.MaxSequences"/> sequence slots. Disposing the model frees the context
    /// and, with the last user, the weights.
    /// </summary>
    public static ConsortModel Load(LlamaModelOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.Path)) throw new ConfigException("model path is empty");
        var shared = LlamaSharedWeights.Acquire(options.Path);
        LlamaTokenModel tokens;
        try
        {
            string name = options.Name ?? Path.GetFileNameWithoutExtension(options.Path);
            tokens = new LlamaTokenModel(shared, options, name);
        }
        catch
        {
            shared.Release();
            throw;
        }
        var client = new LlamaChatClient(tokens, options.Seed);
        var chat = new ChatClientBuilder(client).UseConsortCost(tokens.Descriptor).Build();
        return new ConsortModel(tokens.Descriptor, chat, tokens, owned: [chat, client, tokens]);
    }

    /// <summary>Loads a token model alone (the caller disposes it).</summary>
    public static LlamaTokenModel LoadTokenModel(LlamaModelOptions options)
    {
        var shared = LlamaSharedWeights.Acquire(options.Path, semantic: !options.SkipSemanticValidation);
        try
        {
            return new LlamaTokenModel(shared, options, options.Name ?? Path.GetFileNameWithoutExtension(options.Path));
        }
        catch
        {
            shared.Release();
            throw;
        }
    }
}
