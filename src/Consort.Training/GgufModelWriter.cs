using Consort.Formats.Gguf;

namespace Consort.Training;

/// <summary>Writes a tiny LLaMA (shape, weights, byte tokenizer) as a GGUF v3 file that llama.cpp loads.</summary>
public static class GgufModelWriter
{
    /// <summary>
    /// Writes <paramref name="weights"/> (GGUF tensor name to F32 values) to <paramref name="path"/> atomically.
    /// 2-D tensors use <paramref name="type"/>; 1-D norm weights stay F32 as llama.cpp expects.
    /// </summary>
    public static void Write(string path, TinyLlamaConfig config, string name, GgmlType type,
        IReadOnlyDictionary<string, float[]> weights, IReadOnlyDictionary<string, GgufValue>? extra = null)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        using var w = new GgufWriter(path);
        w.SetMetadata("general.architecture", GgufValue.Of("llama"));
        w.SetMetadata("general.name", GgufValue.Of(name));
        w.SetMetadata("general.file_type", GgufValue.Of(type == GgmlType.F16 ? 1u : 0u));
        w.SetMetadata("llama.context_length", GgufValue.Of((uint)config.Context));
        w.SetMetadata("llama.embedding_length", GgufValue.Of((uint)config.Dim));
        w.SetMetadata("llama.block_count", GgufValue.Of((uint)config.Layers));
        w.SetMetadata("llama.feed_forward_length", GgufValue.Of((uint)config.Ffn));
        w.SetMetadata("llama.attention.head_count", GgufValue.Of((uint)config.Heads));
        w.SetMetadata("llama.attention.head_count_kv", GgufValue.Of((uint)config.Heads));
        w.SetMetadata("llama.rope.dimension_count", GgufValue.Of((uint)config.HeadDim));
        w.SetMetadata("llama.rope.freq_base", GgufValue.Of(config.RopeBase));
        w.SetMetadata("llama.attention.layer_norm_rms_epsilon", GgufValue.Of(config.RmsEps));
        w.SetMetadata("llama.vocab_size", GgufValue.Of((uint)config.Vocab));
        w.SetMetadata("tokenizer.ggml.model", GgufValue.Of("gpt2"));
        w.SetMetadata("tokenizer.ggml.pre", GgufValue.Of("gpt-2"));
        w.SetMetadata("tokenizer.ggml.tokens", GgufValue.Of(ByteTokenizer.TokenTexts.ToArray()));
        w.SetMetadata("tokenizer.ggml.token_type", GgufValue.Of(ByteTokenizer.TokenTypes()));
        w.SetMetadata("tokenizer.ggml.merges", GgufValue.Of(Array.Empty<string>()));
        w.SetMetadata("tokenizer.ggml.bos_token_id", GgufValue.Of((uint)ByteTokenizer.Bos));
        w.SetMetadata("tokenizer.ggml.eos_token_id", GgufValue.Of((uint)ByteTokenizer.Eos));
        // gpt2-type vocabularies default to no BOS; the models are trained with one.
        w.SetMetadata("tokenizer.ggml.add_bos_token", GgufValue.Of(true));
        w.SetMetadata("tokenizer.ggml.add_eos_token", GgufValue.Of(false));
        if (extra is not null) foreach (var kv in extra) w.SetMetadata(kv.Key, kv.Value);
        var shapes = config.Tensors().ToList();
        foreach (var (n, dims) in shapes)
        {
            if (!weights.TryGetValue(n, out var data)) throw new ConsortException($"GGUF writer: weight {n} missing");
            if (data.LongLength != dims.Aggregate(1L, (a, b) => a * b)) throw new ConsortException($"GGUF writer: weight {n} has the wrong size");
            w.AddTensor(n, dims, dims.Length == 1 ? GgmlType.F32 : type);
        }
        foreach (var (n, _) in shapes) w.WriteTensor(n, weights[n]);
        w.Commit();
    }
}
