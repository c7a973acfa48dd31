using Consort.Formats.Gguf;

namespace Consort.Training;

/// <summary>Shape of a tiny LLaMA model (the zoo's default: 128 wide, 4 layers, 4 heads, FFN 384, byte vocabulary, context 128).</summary>
public sealed record TinyLlamaConfig
{
    /// <summary>Embedding width.</summary>
    public int Dim { get; init; } = 128;
    /// <summary>Transformer blocks.</summary>
    public int Layers { get; init; } = 4;
    /// <summary>Attention heads (no grouped KV).</summary>
    public int Heads { get; init; } = 4;
    /// <summary>Feed-forward width.</summary>
    public int Ffn { get; init; } = 384;
    /// <summary>Vocabulary size.</summary>
    public int Vocab { get; init; } = ByteTokenizer.VocabSize;
    /// <summary>Context length written to the GGUF.</summary>
    public int Context { get; init; } = 128;
    /// <summary>RMS-norm epsilon.</summary>
    public float RmsEps { get; init; } = 1e-5f;
    /// <summary>RoPE base frequency.</summary>
    public float RopeBase { get; init; } = 10000f;

    /// <summary>Per-head width.</summary>
    public int HeadDim => Dim / Heads;

    /// <summary>Throws on shapes the trainer cannot build.</summary>
    public void Validate()
    {
        if (Dim <= 0 || Layers <= 0 || Heads <= 0 || Ffn <= 0 || Context <= 0) throw new ConsortException("model config: all sizes must be positive");
        if (Dim % Heads != 0 || HeadDim % 2 != 0) throw new ConsortException($"model config: dim {Dim} must split into {Heads} heads of even width");
        if (Vocab != ByteTokenizer.VocabSize) throw new ConsortException($"model config: only the byte vocabulary ({ByteTokenizer.VocabSize}) is supported, not {Vocab}");
    }

    /// <summary>Every weight tensor: GGUF name and dims innermost-first.</summary>
    public IEnumerable<(string Name, long[] Dims)> Tensors()
    {
        yield return ("token_embd.weight", [Dim, Vocab]);
        for (int l = 0; l < Layers; l++)
        {
            yield return ($"blk.{l}.attn_norm.weight", [Dim]);
            yield return ($"blk.{l}.attn_q.weight", [Dim, Dim]);
            yield return ($"blk.{l}.attn_k.weight", [Dim, Dim]);
            yield return ($"blk.{l}.attn_v.weight", [Dim, Dim]);
            yield return ($"blk.{l}.attn_output.weight", [Dim, Dim]);
            yield return ($"blk.{l}.ffn_norm.weight", [Dim]);
            yield return ($"blk.{l}.ffn_gate.weight", [Dim, Ffn]);
            yield return ($"blk.{l}.ffn_up.weight", [Dim, Ffn]);
            yield return ($"blk.{l}.ffn_down.weight", [Ffn, Dim]);
        }
        yield return ("output_norm.weight", [Dim]);
        yield return ("output.weight", [Dim, Vocab]);
    }

    /// <summary>Total parameter count.</summary>
    public long ParameterCount => Tensors().Sum(t => t.Dims.Aggregate(1L, (a, b) => a * b));

    /// <summary>Reads the shape from a llama GGUF's metadata.</summary>
    public static TinyLlamaConfig FromGguf(GgufFile f)
    {
        if (f.Architecture != "llama") throw new ModelFileException(f.Path, $"architecture '{f.Architecture}' is not llama");
        int Get(string k) => (int)(f.GetInt("llama." + k) ?? throw new ModelFileException(f.Path, $"metadata key llama.{k} missing"));
        var c = new TinyLlamaConfig
        {
            Dim = Get("embedding_length"), Layers = Get("block_count"), Heads = Get("attention.head_count"), Ffn = Get("feed_forward_length"),
            Context = Get("context_length"), Vocab = f.Tokens?.Length ?? 0,
            RmsEps = (float)(f.GetFloat("llama.attention.layer_norm_rms_epsilon") ?? 1e-5), RopeBase = (float)(f.GetFloat("llama.rope.freq_base") ?? 10000),
        };
        if ((f.GetInt("llama.attention.head_count_kv") ?? c.Heads) != c.Heads) throw new ModelFileException(f.Path, "grouped-query attention is not supported by the trainer");
        c.Validate();
        return c;
    }
}
