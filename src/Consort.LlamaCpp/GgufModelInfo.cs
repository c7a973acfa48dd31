using LLama;

namespace Consort.LlamaCpp;

/// <summary>What the loader needs to know about a GGUF model before and after llama.cpp loads it.</summary>
internal sealed record GgufModelInfo(
    string Path, string Architecture, long? Parameters, int ContextLength, VocabularyIdentity Vocabulary,
    bool HasChatTemplate)
{
    /// <summary>Validates the file in managed code. Must run before llama.cpp sees the file:
    /// a malformed GGUF makes llama.cpp assert and kill the process.</summary>
    public static GgufModelInfo Validate(string path)
    {
        if (!File.Exists(path)) throw new ModelFileException(path, "file not found");
        // TEMPORARY until GgufFile lands: header sanity only.
        using var s = File.OpenRead(path);
        Span<byte> head = stackalloc byte[24];
        if (s.Read(head) < 24 || head[0] != 'G' || head[1] != 'G' || head[2] != 'U' || head[3] != 'F')
            throw new ModelFileException(path, "not a GGUF file (bad magic)");
        return new GgufModelInfo(path, "?", null, 0, new VocabularyIdentity(0, ""), false);
    }

    /// <summary>Fills what the header check left open from the loaded weights.</summary>
    public GgufModelInfo Complete(LLamaWeights weights)
    {
        var meta = weights.Metadata;
        string arch = meta.TryGetValue("general.architecture", out var a) ? a : Architecture;
        int ctx = ContextLength > 0 ? ContextLength : weights.ContextSize;
        var vocab = Vocabulary;
        if (vocab.Size == 0)
        {
            var v = weights.NativeHandle.Vocab;
            using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
            for (int i = 0; i < v.Count; i++)
            {
                sha.AppendData(System.Text.Encoding.UTF8.GetBytes(v.LLamaTokenToString((LLama.Native.LLamaToken)i, true) ?? ""));
                sha.AppendData([0]);
            }
            string kind = meta.TryGetValue("tokenizer.ggml.model", out var k) ? k : "vocab";
            vocab = new VocabularyIdentity(v.Count, Convert.ToHexStringLower(sha.GetHashAndReset()), kind);
        }
        return this with
        {
            Architecture = arch, ContextLength = ctx, Vocabulary = vocab, Parameters = Parameters ?? (long)weights.ParameterCount,
            HasChatTemplate = HasChatTemplate || meta.ContainsKey("tokenizer.chat_template"),
        };
    }
}
