using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Consort.Formats.Gguf;

namespace Consort.Formats.Conversion;

/// <summary>The LLaMA hyperparameters both config.json and GGUF metadata carry.</summary>
public sealed record LlamaHyperparameters(int Dim, int HiddenDim, int Layers, int Heads, int KvHeads, int VocabSize,
    int ContextLength, double RmsEps, double RopeTheta, bool TiedEmbeddings)
{
    /// <summary>Per-head width.</summary>
    public int HeadDim => Dim / Heads;

    /// <summary>Reads config.json of a Hugging Face LlamaForCausalLM checkpoint.</summary>
    public static LlamaHyperparameters FromConfigJson(JsonElement c, string path)
    {
        int I(string key, int? fallback = null) =>
            c.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32()
            : fallback ?? throw new ModelFileException(path, $"config.json has no '{key}'");
        double D(string key, double fallback) => c.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : fallback;
        if (c.TryGetProperty("model_type", out var mt) && mt.GetString() is { } type && type != "llama")
            throw new ModelFileException(path, $"model_type '{type}' is not supported (only llama)");
        int heads = I("num_attention_heads");
        return new LlamaHyperparameters(I("hidden_size"), I("intermediate_size"), I("num_hidden_layers"), heads,
            I("num_key_value_heads", heads), I("vocab_size"), I("max_position_embeddings", 2048), D("rms_norm_eps", 1e-6),
            D("rope_theta", 10000), c.TryGetProperty("tie_word_embeddings", out var t) && t.ValueKind == JsonValueKind.True);
    }

    /// <summary>Reads llama.* GGUF metadata.</summary>
    public static LlamaHyperparameters FromGguf(GgufFile f)
    {
        if (f.Architecture != "llama") throw new ModelFileException(f.Path, $"architecture '{f.Architecture}' is not supported (only llama)");
        int I(string key) => (int)(f.GetInt("llama." + key) ?? throw new ModelFileException(f.Path, $"metadata key 'llama.{key}' is missing"));
        int heads = I("attention.head_count");
        int vocab = (int)(f.GetInt("llama.vocab_size") ?? f.Tokens?.Length ?? f.FindTensor("token_embd.weight")?.Dimensions[1] ?? 0);
        return new LlamaHyperparameters(I("embedding_length"), I("feed_forward_length"), I("block_count"), heads,
            (int)(f.GetInt("llama.attention.head_count_kv") ?? heads), vocab, (int)(f.GetInt("llama.context_length") ?? 2048),
            f.GetFloat("llama.attention.layer_norm_rms_epsilon") ?? 1e-5, f.GetFloat("llama.rope.freq_base") ?? 10000,
            f.FindTensor("output.weight") is null);
    }

    /// <summary>Writes the llama.* keys llama.cpp reads.</summary>
    public void WriteGguf(GgufWriter w, string name, GgmlType mostType)
    {
        w.SetMetadata("general.architecture", GgufValue.Of("llama"));
        w.SetMetadata("general.type", GgufValue.Of("model"));
        w.SetMetadata("general.name", GgufValue.Of(name));
        w.SetMetadata("general.file_type", GgufValue.Of((uint)(mostType == GgmlType.F16 ? 1 : mostType == GgmlType.BF16 ? 32 : mostType == GgmlType.Q8_0 ? 7 : 0)));
        w.SetMetadata("llama.context_length", GgufValue.Of((uint)ContextLength));
        w.SetMetadata("llama.embedding_length", GgufValue.Of((uint)Dim));
        w.SetMetadata("llama.block_count", GgufValue.Of((uint)Layers));
        w.SetMetadata("llama.feed_forward_length", GgufValue.Of((uint)HiddenDim));
        w.SetMetadata("llama.attention.head_count", GgufValue.Of((uint)Heads));
        w.SetMetadata("llama.attention.head_count_kv", GgufValue.Of((uint)KvHeads));
        w.SetMetadata("llama.rope.dimension_count", GgufValue.Of((uint)HeadDim));
        w.SetMetadata("llama.rope.freq_base", GgufValue.Of((float)RopeTheta));
        w.SetMetadata("llama.attention.layer_norm_rms_epsilon", GgufValue.Of((float)RmsEps));
        w.SetMetadata("llama.vocab_size", GgufValue.Of((uint)VocabSize));
    }

    /// <summary>A config.json for LlamaForCausalLM.</summary>
    public JsonObject ToConfigJson(string dtype) => new()
    {
        ["architectures"] = new JsonArray("LlamaForCausalLM"),
        ["model_type"] = "llama",
        ["hidden_size"] = Dim,
        ["intermediate_size"] = HiddenDim,
        ["num_hidden_layers"] = Layers,
        ["num_attention_heads"] = Heads,
        ["num_key_value_heads"] = KvHeads,
        ["vocab_size"] = VocabSize,
        ["max_position_embeddings"] = ContextLength,
        ["rms_norm_eps"] = double.Parse(((float)RmsEps).ToString("R", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture),
        ["rope_theta"] = RopeTheta,
        ["hidden_act"] = "silu",
        ["tie_word_embeddings"] = TiedEmbeddings,
        ["torch_dtype"] = dtype,
        ["bos_token_id"] = 1,
        ["eos_token_id"] = 2,
    };
}
