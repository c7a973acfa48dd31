using Consort.Formats.Gguf;
using LLama;

namespace Consort.LlamaCpp;

/// <summary>What the loader needs to know about a GGUF model, read in managed code.</summary>
internal sealed record GgufModelInfo(
    string Path, string Architecture, long? Parameters, int ContextLength, VocabularyIdentity Vocabulary,
    bool HasChatTemplate, string? FileKind)
{
    /// <summary>Validates the whole file with <see cref="GgufFile"/>. Must run before llama.cpp sees the
    /// file: a malformed GGUF makes llama.cpp assert and kill the process.</summary>
    /// <param name="path">The file.</param>
    /// <param name="adapter">True for a LoRA adapter (no tokenizer needed; general.type must be "adapter").</param>
    public static GgufModelInfo Validate(string path, bool adapter = false)
    {
        using var gguf = GgufFile.Open(path);
        if (adapter && gguf.FileKind != "adapter")
            throw new ModelFileException(gguf.Path, $"not a LoRA adapter ({GgufKeys.General.Type} is {MessageText.Quote(gguf.FileKind ?? "(missing)")})");
        if (!adapter && gguf.FileKind == "adapter")
            throw new ModelFileException(gguf.Path, "this is a LoRA adapter, not a model (give it as an adapter of a base model)");
        // The semantic checks (tensor set, shapes, types, hyperparameters, vocabulary): llama.cpp aborts on many of these.
        GgufValidator.ThrowIfInvalid(gguf);
        string arch = gguf.Architecture!;
        if (adapter) return new GgufModelInfo(gguf.Path, arch, gguf.ParameterCount, 0, new VocabularyIdentity(0, ""), false, gguf.FileKind);
        return new GgufModelInfo(gguf.Path, arch, gguf.ParameterCount, gguf.ContextLength, gguf.Vocabulary!,
            gguf.GetString(GgufKeys.Tokenizer.ChatTemplate) is { Length: > 0 }, gguf.FileKind);
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
