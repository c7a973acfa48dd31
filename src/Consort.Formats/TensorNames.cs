using System.Text.RegularExpressions;

namespace Consort.Formats;

/// <summary>
/// The tensor-name map between Hugging Face LLaMA checkpoints (model.layers.N.self_attn.q_proj.weight) and
/// GGUF (blk.N.attn_q.weight), and the row permutation llama.cpp applies to q/k projections for its rope layout.
/// </summary>
public static partial class TensorNames
{
    private static readonly (string Hf, string Gguf)[] Global =
    [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ];

    private static readonly (string Hf, string Gguf)[] PerLayer =
    [
        ("input_layernorm.weight", "attn_norm.weight"),
        ("self_attn.q_proj.weight", "attn_q.weight"),
        ("self_attn.k_proj.weight", "attn_k.weight"),
        ("self_attn.v_proj.weight", "attn_v.weight"),
        ("self_attn.o_proj.weight", "attn_output.weight"),
        ("post_attention_layernorm.weight", "ffn_norm.weight"),
        ("mlp.gate_proj.weight", "ffn_gate.weight"),
        ("mlp.up_proj.weight", "ffn_up.weight"),
        ("mlp.down_proj.weight", "ffn_down.weight"),
    ];

    [GeneratedRegex(@"^model\.layers\.(\d+)\.(.+)$")]
    private static partial Regex HfLayer();
    [GeneratedRegex(@"^blk\.(\d+)\.(.+)$")]
    private static partial Regex GgufLayer();

    /// <summary>GGUF name of a Hugging Face LLaMA tensor, or null when it has none (e.g. rotary inv_freq buffers).</summary>
    public static string? HfToGguf(string hf)
    {
        foreach (var (h, g) in Global) if (h == hf) return g;
        var m = HfLayer().Match(hf);
        if (!m.Success) return null;
        foreach (var (h, g) in PerLayer) if (h == m.Groups[2].Value) return $"blk.{m.Groups[1].Value}.{g}";
        return null;
    }

    /// <summary>Hugging Face name of a GGUF LLaMA tensor, or null when it has none.</summary>
    public static string? GgufToHf(string gguf)
    {
        foreach (var (h, g) in Global) if (g == gguf) return h;
        var m = GgufLayer().Match(gguf);
        if (!m.Success) return null;
        foreach (var (h, g) in PerLayer) if (g == m.Groups[2].Value) return $"model.layers.{m.Groups[1].Value}.{h}";
        return null;
    }

    /// <summary>Layer index of a tensor in either naming, or null for global tensors.</summary>
    public static int? LayerIndex(string name)
    {
        var m = GgufLayer().Match(name);
        if (!m.Success) m = HfLayer().Match(name);
        return m.Success ? int.Parse(m.Groups[1].Value) : null;
    }

    /// <summary>Whether a tensor is the token embedding (either naming): it comes before the layers.</summary>
    public static bool IsEmbedding(string name) =>
        name.Contains("embed", StringComparison.Ordinal) || name.StartsWith("token_embd", StringComparison.Ordinal);

    /// <summary>Layers of a model: one more than the highest layer index among <paramref name="names"/> (0 without layers).</summary>
    public static int LayerCount(IEnumerable<string> names) => names.Select(n => LayerIndex(n) ?? -1).DefaultIfEmpty(-1).Max() + 1;

    /// <summary>The same tensor name in layer <paramref name="layer"/> (either naming); global names are returned unchanged.</summary>
    public static string WithLayer(string name, int layer)
    {
        var m = GgufLayer().Match(name);
        if (m.Success) return $"blk.{layer}.{m.Groups[2].Value}";
        m = HfLayer().Match(name);
        return m.Success ? $"model.layers.{layer}.{m.Groups[2].Value}" : name;
    }

    /// <summary>The Hugging Face name when <paramref name="name"/> is a GGUF name, else the name itself (for mergekit filters).</summary>
    public static string ToHfStyle(string name) => GgufToHf(name) ?? name;

    /// <summary>
    /// Reorders the rows of a q or k projection ([heads*headDim, in], row-major) from Hugging Face's rotate-half
    /// rope layout to llama.cpp's interleaved layout (<paramref name="inverse"/>: back again).
    /// </summary>
    public static float[] PermuteForRope(ReadOnlySpan<float> w, int rows, int cols, int heads, bool inverse = false)
    {
        if (rows % heads != 0 || rows / heads % 2 != 0) throw new ArgumentException($"{rows} rows cannot be split into {heads} heads of even size");
        int hd = rows / heads, half = hd / 2;
        var result = new float[w.Length];
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < half; i++)
                for (int j = 0; j < 2; j++)
                {
                    int gg = h * hd + i * 2 + j;      // row in llama.cpp layout
                    int hf = h * hd + j * half + i;   // the same row in HF layout
                    int dst = inverse ? hf : gg, src = inverse ? gg : hf;
                    w.Slice(src * cols, cols).CopyTo(result.AsSpan(dst * cols, cols));
                }
        return result;
    }
}
