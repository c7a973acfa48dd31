namespace Consort.LlamaCpp;

/// <summary>A LoRA adapter applied on top of a model's weights.</summary>
/// <param name="Path">Adapter GGUF file.</param>
/// <param name="Scale">Strength (1 = as trained, 0 = off).</param>
public sealed record LoraAdapterOption(string Path, float Scale = 1f);

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
    /// <summary>Reuse the KV cells of a cached prompt prefix (default true). False computes every prompt from its first
    /// token: for benchmarks that measure what reuse saves, and for ruling it out when debugging.</summary>
    public bool PrefixReuse { get; init; } = true;
    /// <summary>Default sampling seed for chat calls that give none.</summary>
    public int? Seed { get; init; }
    /// <summary>LoRA adapters with their scales.</summary>
    public IReadOnlyList<LoraAdapterOption> Adapters { get; init; } = [];
}
