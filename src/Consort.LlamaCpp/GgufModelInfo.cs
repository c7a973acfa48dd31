using Consort.Formats.Gguf;
using LLama;

namespace Consort.LlamaCpp;

/// <summary>What the loader needs to know about a GGUF model, read in managed code.</summary>
internal sealed record GgufModelInfo(
    string Path, string Architecture, long? Parameters, int ContextLength, VocabularyIdentity Vocabulary,
    bool HasChatTemplate, string? FileKind)
{
    /// <summary>Which characters the vocabulary can encode (null: not modelled for this tokenizer family).</summary>
    public TokenCoverage? Coverage { get; init; }
    /// <summary>Bytes of KV cache per token of context (K and V in F16 over all layers), for memory bounds; 0 when unknown.</summary>
    public long KvBytesPerToken { get; init; }

    /// <summary>Validates the whole file with <see cref="GgufFile"/>. Must run before llama.cpp sees the
    /// file: a malformed GGUF makes llama.cpp assert and kill the process.</summary>
    /// <param name="path">The file.</param>
    /// <param name="adapter">True for a LoRA adapter (no tokenizer needed; general.type must be "adapter").</param>
    /// <param name="semantic">False skips <see cref="GgufValidator"/> (the probe child's tests only).</param>
    public static GgufModelInfo Validate(string path, bool adapter = false, bool semantic = true)
    {
        using var gguf = GgufFile.Open(path);
        if (adapter && gguf.FileKind != "adapter")
            throw new ModelFileException(gguf.Path, $"not a LoRA adapter ({GgufKeys.General.Type} is {MessageText.Quote(gguf.FileKind ?? "(missing)")})");
        if (!adapter && gguf.FileKind == "adapter")
            throw new ModelFileException(gguf.Path, "this is a LoRA adapter, not a model (give it as an adapter of a base model)");
        // The semantic checks (tensor set, shapes, types, hyperparameters, vocabulary): llama.cpp aborts on many of these.
        if (semantic) GgufValidator.ThrowIfInvalid(gguf);
        string arch = gguf.Architecture ?? throw new ModelFileException(gguf.Path, $"{GgufKeys.General.Architecture} is missing");
        if (!semantic && gguf.Vocabulary is null) throw new ModelFileException(gguf.Path, "no tokenizer");
        if (adapter) return new GgufModelInfo(gguf.Path, arch, gguf.ParameterCount, 0, new VocabularyIdentity(0, ""), false, gguf.FileKind);
        return new GgufModelInfo(gguf.Path, arch, gguf.ParameterCount, gguf.ContextLength, gguf.Vocabulary!,
            gguf.GetString(GgufKeys.Tokenizer.ChatTemplate) is { Length: > 0 }, gguf.FileKind)
        {
            Coverage = TokenCoverage.From(gguf),
            KvBytesPerToken = KvBytes(gguf, arch),
        };
    }

    private static long KvBytes(GgufFile g, string arch)
    {
        long layers = g.GetInt(GgufKeys.Llm.BlockCount(arch)) ?? 0, embd = g.GetInt(GgufKeys.Llm.EmbeddingLength(arch)) ?? 0;
        long heads = g.GetInt(GgufKeys.Llm.HeadCount(arch)) ?? 0, kv = g.GetInt(GgufKeys.Llm.HeadCountKv(arch)) ?? heads;
        if (layers <= 0 || embd <= 0 || heads <= 0 || kv <= 0) return 0;
        long headK = g.GetInt(GgufKeys.Llm.KeyLength(arch)) ?? embd / heads, headV = g.GetInt(GgufKeys.Llm.ValueLength(arch)) ?? embd / heads;
        return layers * kv * (headK + headV) * 2;
    }

    /// <summary>Cross-checks what llama.cpp loaded against the managed reading.</summary>
    public GgufModelInfo Complete(LLamaWeights weights)
    {
        int nVocab = weights.NativeHandle.Vocab.Count;
        if (nVocab != Vocabulary.Size)
            throw new ModelFileException(Path, $"llama.cpp sees {nVocab} tokens but the file lists {Vocabulary.Size}");
        return ContextLength > 0 ? this : this with { ContextLength = weights.ContextSize };
    }
}
