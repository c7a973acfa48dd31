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

    /// <summary>Reads config.json of a Hugging Face LlamaForCausalLM checkpoint and checks its ranges
    /// (<see cref="Check"/>), naming config.json's keys.</summary>
    public static LlamaHyperparameters FromConfigJson(JsonElement c, string path)
    {
        if (c.ValueKind != JsonValueKind.Object) throw new ModelFileException(path, "config.json must be a JSON object");
        int I(string key, int? fallback = null)
        {
            if (!c.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null)
                return fallback ?? throw new ModelFileException(path, $"config.json has no '{key}'");
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int n))
                throw new ModelFileException(path, $"'{key}' must be a whole number, got {MessageText.Escape(v.GetRawText(), 60)}");
            return n;
        }
        double D(string key, double fallback)
        {
            if (!c.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null) return fallback;
            if (v.ValueKind != JsonValueKind.Number) throw new ModelFileException(path, $"'{key}' must be a number, got {MessageText.Escape(v.GetRawText(), 60)}");
            return v.GetDouble();
        }
        if (c.TryGetProperty("model_type", out var mt) && mt.ValueKind != JsonValueKind.Null)
        {
            string? type = mt.ValueKind == JsonValueKind.String ? mt.GetString() : MessageText.Escape(mt.GetRawText(), 60);
            if (type != "llama") throw new ModelFileException(path, $"model_type {MessageText.Quote(type)} is not supported (only llama)");
        }
        int heads = I("num_attention_heads");
        var hp = new LlamaHyperparameters(I("hidden_size"), I("intermediate_size"), I("num_hidden_layers"), heads,
            I("num_key_value_heads", heads), I("vocab_size"), I("max_position_embeddings", 2048), D("rms_norm_eps", 1e-6),
            D("rope_theta", 10000), c.TryGetProperty("tie_word_embeddings", out var t) && t.ValueKind == JsonValueKind.True);
        hp.Check(path, ConfigJsonNames);
        return hp;
    }

    /// <summary>config.json's name of each hyperparameter, for messages.</summary>
    public static readonly IReadOnlyDictionary<string, string> ConfigJsonNames = new Dictionary<string, string>
    {
        [nameof(Dim)] = "hidden_size", [nameof(HiddenDim)] = "intermediate_size", [nameof(Layers)] = "num_hidden_layers",
        [nameof(Heads)] = "num_attention_heads", [nameof(KvHeads)] = "num_key_value_heads", [nameof(VocabSize)] = "vocab_size",
        [nameof(ContextLength)] = "max_position_embeddings", [nameof(RmsEps)] = "rms_norm_eps", [nameof(RopeTheta)] = "rope_theta",
    };

    /// <summary>
    /// The ranges and divisibility llama.cpp needs (the same rules <see cref="GgufValidator"/> applies to a GGUF file),
    /// checked before any tensor is converted; <paramref name="names"/> maps property names to the source's key names.
    /// </summary>
    /// <exception cref="ModelFileException">A value llama.cpp would reject or abort on.</exception>
    public void Check(string path, IReadOnlyDictionary<string, string>? names = null)
    {
        string N(string property) => names?.GetValueOrDefault(property) ?? property;
        void Range(string property, long value, long min, long max)
        {
            if (value < min || value > max) throw new ModelFileException(path, $"'{N(property)}' is {value}; it must be {min}..{max} (llama.cpp cannot run the converted model otherwise)");
        }
        Range(nameof(Layers), Layers, 1, GgufValidator.MaxLayers);
        Range(nameof(Dim), Dim, 1, GgufValidator.MaxWidth);
        Range(nameof(HiddenDim), HiddenDim, 1, GgufValidator.MaxWidth);
        Range(nameof(Heads), Heads, 1, Dim);
        Range(nameof(KvHeads), KvHeads, 1, Heads);
        Range(nameof(VocabSize), VocabSize, 1, int.MaxValue);
        Range(nameof(ContextLength), ContextLength, 1, GgufValidator.MaxContextLength);
        if (Dim % Heads != 0) throw new ModelFileException(path, $"'{N(nameof(Dim))}' {Dim} is not a multiple of '{N(nameof(Heads))}' {Heads}");
        if (Heads % KvHeads != 0) throw new ModelFileException(path, $"'{N(nameof(Heads))}' {Heads} is not a multiple of '{N(nameof(KvHeads))}' {KvHeads}");
        if (HeadDim % 2 != 0) throw new ModelFileException(path, $"the head size {HeadDim} ('{N(nameof(Dim))}' / '{N(nameof(Heads))}') is odd; rope needs an even size");
        if (!double.IsFinite(RmsEps) || RmsEps <= 0 || RmsEps >= 1)
            throw new ModelFileException(path, $"'{N(nameof(RmsEps))}' is {RmsEps.ToString(CultureInfo.InvariantCulture)}; it must be in (0, 1)");
        if (!double.IsFinite(RopeTheta) || RopeTheta <= 0 || RopeTheta > float.MaxValue)
            throw new ModelFileException(path, $"'{N(nameof(RopeTheta))}' is {RopeTheta.ToString(CultureInfo.InvariantCulture)}; it must be a positive finite number");
    }

    /// <summary>Reads llama.* GGUF metadata.</summary>
    public static LlamaHyperparameters FromGguf(GgufFile f)
    {
        if (f.Architecture != "llama") throw new ModelFileException(f.Path, $"architecture {MessageText.Quote(f.Architecture ?? "(missing)")} is not supported (only llama)");
        int I(string key) => f.GetInt(key) is { } v and >= 0 and <= int.MaxValue ? (int)v
            : throw new ModelFileException(f.Path, $"metadata key '{key}' is missing or out of range");
        int heads = I(GgufKeys.Llm.HeadCount("llama"));
        int vocab = (int)(f.GetInt(GgufKeys.Llm.VocabSize("llama")) ?? f.Tokens?.Length ?? f.FindTensor("token_embd.weight")?.Dimensions[1] ?? 0);
        var hp = new LlamaHyperparameters(I(GgufKeys.Llm.EmbeddingLength("llama")), I(GgufKeys.Llm.FeedForwardLength("llama")), I(GgufKeys.Llm.BlockCount("llama")), heads,
            f.GetInt(GgufKeys.Llm.HeadCountKv("llama")) is not null ? I(GgufKeys.Llm.HeadCountKv("llama")) : heads, vocab,
            (int)Math.Clamp(f.GetInt(GgufKeys.Llm.ContextLength("llama")) ?? 2048, 0, int.MaxValue),
            f.GetFloat(GgufKeys.Llm.RmsEpsilon("llama")) ?? 1e-5, f.GetFloat(GgufKeys.Llm.RopeFreqBase("llama")) ?? 10000,
            f.FindTensor("output.weight") is null);
        hp.Check(f.Path, GgufNames);
        return hp;
    }

    /// <summary>GGUF's name of each hyperparameter, for messages.</summary>
    public static readonly IReadOnlyDictionary<string, string> GgufNames = new Dictionary<string, string>
    {
        [nameof(Dim)] = GgufKeys.Llm.EmbeddingLength("llama"), [nameof(HiddenDim)] = GgufKeys.Llm.FeedForwardLength("llama"),
        [nameof(Layers)] = GgufKeys.Llm.BlockCount("llama"), [nameof(Heads)] = GgufKeys.Llm.HeadCount("llama"),
        [nameof(KvHeads)] = GgufKeys.Llm.HeadCountKv("llama"), [nameof(VocabSize)] = GgufKeys.Llm.VocabSize("llama"),
        [nameof(ContextLength)] = GgufKeys.Llm.ContextLength("llama"), [nameof(RmsEps)] = GgufKeys.Llm.RmsEpsilon("llama"),
        [nameof(RopeTheta)] = GgufKeys.Llm.RopeFreqBase("llama"),
    };

    /// <summary>Writes the llama.* keys llama.cpp reads.</summary>
    public void WriteGguf(GgufWriter w, string name, GgmlType mostType)
    {
        const string a = "llama";
        w.SetMetadata(GgufKeys.General.Architecture, GgufValue.Of(a));
        w.SetMetadata(GgufKeys.General.Type, GgufValue.Of("model"));
        w.SetMetadata(GgufKeys.General.Name, GgufValue.Of(name));
        w.SetMetadata(GgufKeys.General.FileType, GgufValue.Of((uint)(mostType == GgmlType.F16 ? 1 : mostType == GgmlType.BF16 ? 32 : mostType == GgmlType.Q8_0 ? 7 : 0)));
        w.SetMetadata(GgufKeys.Llm.ContextLength(a), GgufValue.Of((uint)ContextLength));
        w.SetMetadata(GgufKeys.Llm.EmbeddingLength(a), GgufValue.Of((uint)Dim));
        w.SetMetadata(GgufKeys.Llm.BlockCount(a), GgufValue.Of((uint)Layers));
        w.SetMetadata(GgufKeys.Llm.FeedForwardLength(a), GgufValue.Of((uint)HiddenDim));
        w.SetMetadata(GgufKeys.Llm.HeadCount(a), GgufValue.Of((uint)Heads));
        w.SetMetadata(GgufKeys.Llm.HeadCountKv(a), GgufValue.Of((uint)KvHeads));
        w.SetMetadata(GgufKeys.Llm.RopeDimensionCount(a), GgufValue.Of((uint)HeadDim));
        w.SetMetadata(GgufKeys.Llm.RopeFreqBase(a), GgufValue.Of((float)RopeTheta));
        w.SetMetadata(GgufKeys.Llm.RmsEpsilon(a), GgufValue.Of((float)RmsEps));
        w.SetMetadata(GgufKeys.Llm.VocabSize(a), GgufValue.Of((uint)VocabSize));
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
