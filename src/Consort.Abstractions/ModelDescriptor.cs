namespace Consort;

/// <summary>Identity of a tokenizer: two models with the same <see cref="Hash"/> produce the same token ids
/// for the same text and so can be combined token by token.</summary>
/// <param name="Size">Number of tokens.</param>
/// <param name="Hash">Hex SHA-256 over the token list (texts in id order).</param>
/// <param name="Kind">Tokenizer family, e.g. "llama" (SentencePiece) or "gpt2" (byte-level BPE).</param>
public sealed record VocabularyIdentity(int Size, string Hash, string? Kind = null)
{
    /// <summary>Short form for messages.</summary>
    public override string ToString() => $"{Kind ?? "vocab"}:{Size}:{Hash[..Math.Min(12, Hash.Length)]}";
}

/// <summary>What a model is and what it offers.</summary>
public sealed record ModelDescriptor
{
    /// <summary>Name used in configs, traces and results.</summary>
    public required string Name { get; init; }
    /// <summary>The access levels this model offers.</summary>
    public required ModelAccess Access { get; init; }
    /// <summary>For <see cref="ModelAccess.TopKLogprobs"/>: how many alternatives per position (k).</summary>
    public int? TopK { get; init; }
    /// <summary>Tokenizer identity, when token ids are visible.</summary>
    public VocabularyIdentity? Vocabulary { get; init; }
    /// <summary>Context window in tokens (0 when unknown).</summary>
    public int ContextSize { get; init; }
    /// <summary>Architecture (e.g. "llama"), when known.</summary>
    public string? Architecture { get; init; }
    /// <summary>Parameter count, when known.</summary>
    public long? Parameters { get; init; }
    /// <summary>Weights file or folder, when <see cref="ModelAccess.Weights"/> is offered.</summary>
    public string? WeightsPath { get; init; }
    /// <summary>LoRA adapters applied on top of <see cref="WeightsPath"/> at load time (empty when none).</summary>
    public IReadOnlyList<LoraReference> Adapters { get; init; } = [];
    /// <summary>Price per million input tokens, for cost accounting.</summary>
    public decimal? InputPricePerMillion { get; init; }
    /// <summary>Price per million output tokens, for cost accounting.</summary>
    public decimal? OutputPricePerMillion { get; init; }
    /// <summary>
    /// What makes this model's outputs what they are, as a short text: a file digest ("gguf:sha256:..."), an endpoint
    /// and model name ("endpoint:URL#model"), or a digest of a collaboration's definition. Call caches and run
    /// definitions key on it; null when unknown (such a model is not cached).
    /// </summary>
    public string? Identity { get; init; }
    /// <summary>Describes the access in words (with k for top-k access).</summary>
    public string AccessDescription =>
        string.Join(", ", Enum.GetValues<ModelAccess>()
            .Where(f => f is not ModelAccess.None and not ModelAccess.Tokens && Access.HasFlag(f))
            .Select(f => f == ModelAccess.TopKLogprobs && TopK is { } k ? $"top-k logprobs (k = {k})" : f.Describe()));

    /// <summary>Cost of a call with the given token counts, or null without prices.</summary>
    public decimal? CostOf(long inputTokens, long outputTokens) =>
        InputPricePerMillion is null && OutputPricePerMillion is null
            ? null
            : (InputPricePerMillion ?? 0) * inputTokens / 1_000_000m + (OutputPricePerMillion ?? 0) * outputTokens / 1_000_000m;
}

/// <summary>The shared-vocabulary check of token-level methods.</summary>
public static class SharedVocabulary
{
    /// <summary>Throws when <paramref name="models"/> do not all share one vocabulary, naming both models and their vocabularies.</summary>
    /// <param name="models">The models, first one as the reference.</param>
    /// <param name="where">Message prefix (the run and method).</param>
    public static void Require(IReadOnlyList<ModelDescriptor> models, string where)
    {
        var first = models[0];
        foreach (var other in models.Skip(1))
        {
            if (first.Vocabulary is null || other.Vocabulary is null || first.Vocabulary.Hash != other.Vocabulary.Hash || first.Vocabulary.Size != other.Vocabulary.Size)
                throw new ConfigException($"{where}: combines next-token distributions, so every model must share one vocabulary: " +
                                          $"'{first.Name}' has {first.Vocabulary?.ToString() ?? "no visible vocabulary"} but '{other.Name}' has {other.Vocabulary?.ToString() ?? "no visible vocabulary"}");
        }
    }
}
