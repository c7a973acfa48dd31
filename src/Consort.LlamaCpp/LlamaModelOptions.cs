namespace Consort.LlamaCpp;

/// <summary>A LoRA adapter applied on top of a model's weights.</summary>
/// <param name="Path">Adapter GGUF file.</param>
/// <param name="Scale">Strength (1 = as trained, 0 = off).</param>
public sealed record LoraAdapterOption(string Path, float Scale = 1f);

/// <summary>What to do with input characters a model's vocabulary cannot encode (it has no token for them and no byte-fallback tokens).</summary>
public enum UnencodableMode
{
    /// <summary>Fail the call with a clear error naming the model and the character (the default).</summary>
    Error,
    /// <summary>Replace each such character with one the vocabulary can encode (U+FFFD, "?" or " ", else drop it).</summary>
    Replace,
}

/// <summary>How to load a GGUF model through llama.cpp.</summary>
public sealed record LlamaModelOptions
{
    /// <summary>The .gguf file.</summary>
    public required string Path { get; init; }
    /// <summary>Name used in configs and traces (default: the file name without extension).</summary>
    public string? Name { get; init; }
    /// <summary>Tokens per sequence (prompt + output). Default: min(model context, 2048).</summary>
    public int? ContextSize { get; init; }
    /// <summary>CPU threads for decoding. Default: 1 for tiny models; otherwise the processor count or 1, whichever
    /// decodes faster on the machine's current load (measured as it goes).</summary>
    public int? Threads { get; init; }
    /// <summary>Sequences one context holds and decodes together (continuous batching: concurrent calls share
    /// llama_decode calls). The KV cache is sized for this many x <see cref="ContextSize"/> tokens; a call that finds
    /// every sequence in use waits for one to be freed. Default 4.</summary>
    public int MaxSequences { get; init; } = 4;
    /// <summary>Most tokens per llama_decode call (at least 2); longer prompts are split, and sequences stepping
    /// together beyond it take several calls. Default 512.</summary>
    public int BatchSize { get; init; } = 512;
    /// <summary>Default sampling seed for chat calls that give none.</summary>
    public int? Seed { get; init; }
    /// <summary>LoRA adapters with their scales.</summary>
    public IReadOnlyList<LoraAdapterOption> Adapters { get; init; } = [];
    /// <summary>Input characters the vocabulary cannot encode: an error (default) or a replacement.</summary>
    public UnencodableMode Unencodable { get; init; } = UnencodableMode.Error;
    /// <summary>Skips the semantic checks (only the probe child's tests use it, to see a native crash contained).</summary>
    internal bool SkipSemanticValidation { get; init; }

    /// <summary>Parses a config value ("error" or "replace").</summary>
    public static UnencodableMode ParseUnencodable(string? value, string where) => value?.ToLowerInvariant() switch
    {
        null or "error" => UnencodableMode.Error,
        "replace" => UnencodableMode.Replace,
        _ => throw new ConfigException($"{where}: 'unencodable' is {MessageText.Quote(value)}; valid values: error, replace"),
    };
}
