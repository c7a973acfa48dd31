namespace Consort.Formats.Gguf;

/// <summary>
/// GGUF metadata keys in one place (as gguf-py's constants.py keeps them), with the value type llama.cpp reads
/// each one as. llama.cpp checks most types and fails cleanly, but some it asserts on (general.alignment, the
/// tokenizer arrays), which kills the process: <see cref="GgufValidator"/> checks every key listed here first.
/// </summary>
public static class GgufKeys
{
    /// <summary>general.* keys.</summary>
    public static class General
    {
        /// <summary>Architecture name, e.g. "llama".</summary>
        public const string Architecture = "general.architecture";
        /// <summary>"model" or "adapter".</summary>
        public const string Type = "general.type";
        /// <summary>Model name.</summary>
        public const string Name = "general.name";
        /// <summary>Data alignment (u32; gguf.cpp asserts on any other type).</summary>
        public const string Alignment = "general.alignment";
        /// <summary>llama_ftype of the file.</summary>
        public const string FileType = "general.file_type";
        /// <summary>Quantization format version.</summary>
        public const string QuantizationVersion = "general.quantization_version";
    }

    /// <summary>Architecture-prefixed keys ({arch}.*).</summary>
    public static class Llm
    {
        /// <summary>{arch}.context_length</summary>
        public static string ContextLength(string arch) => arch + ".context_length";
        /// <summary>{arch}.embedding_length</summary>
        public static string EmbeddingLength(string arch) => arch + ".embedding_length";
        /// <summary>{arch}.block_count</summary>
        public static string BlockCount(string arch) => arch + ".block_count";
        /// <summary>{arch}.feed_forward_length</summary>
        public static string FeedForwardLength(string arch) => arch + ".feed_forward_length";
        /// <summary>{arch}.vocab_size</summary>
        public static string VocabSize(string arch) => arch + ".vocab_size";
        /// <summary>{arch}.expert_count</summary>
        public static string ExpertCount(string arch) => arch + ".expert_count";
        /// <summary>{arch}.expert_used_count</summary>
        public static string ExpertUsedCount(string arch) => arch + ".expert_used_count";
        /// <summary>{arch}.attention.head_count</summary>
        public static string HeadCount(string arch) => arch + ".attention.head_count";
        /// <summary>{arch}.attention.head_count_kv</summary>
        public static string HeadCountKv(string arch) => arch + ".attention.head_count_kv";
        /// <summary>{arch}.attention.key_length</summary>
        public static string KeyLength(string arch) => arch + ".attention.key_length";
        /// <summary>{arch}.attention.value_length</summary>
        public static string ValueLength(string arch) => arch + ".attention.value_length";
        /// <summary>{arch}.attention.layer_norm_rms_epsilon</summary>
        public static string RmsEpsilon(string arch) => arch + ".attention.layer_norm_rms_epsilon";
        /// <summary>{arch}.rope.dimension_count</summary>
        public static string RopeDimensionCount(string arch) => arch + ".rope.dimension_count";
        /// <summary>{arch}.rope.freq_base</summary>
        public static string RopeFreqBase(string arch) => arch + ".rope.freq_base";
        /// <summary>{arch}.rope.scale_linear</summary>
        public static string RopeScaleLinear(string arch) => arch + ".rope.scale_linear";
        /// <summary>{arch}.rope.scaling.factor</summary>
        public static string RopeScalingFactor(string arch) => arch + ".rope.scaling.factor";
    }

    /// <summary>tokenizer.* keys.</summary>
    public static class Tokenizer
    {
        /// <summary>Tokenizer family: "llama" (SentencePiece), "gpt2" (byte-level BPE), ...</summary>
        public const string Model = "tokenizer.ggml.model";
        /// <summary>Pre-tokenizer name (BPE).</summary>
        public const string Pre = "tokenizer.ggml.pre";
        /// <summary>Token texts (string array).</summary>
        public const string Tokens = "tokenizer.ggml.tokens";
        /// <summary>Token scores (f32 array).</summary>
        public const string Scores = "tokenizer.ggml.scores";
        /// <summary>Token types (i32 array).</summary>
        public const string TokenType = "tokenizer.ggml.token_type";
        /// <summary>BPE merges (string array).</summary>
        public const string Merges = "tokenizer.ggml.merges";
        /// <summary>Beginning-of-sequence token id.</summary>
        public const string BosId = "tokenizer.ggml.bos_token_id";
        /// <summary>End-of-sequence token id.</summary>
        public const string EosId = "tokenizer.ggml.eos_token_id";
        /// <summary>Unknown token id.</summary>
        public const string UnknownId = "tokenizer.ggml.unknown_token_id";
        /// <summary>Padding token id.</summary>
        public const string PaddingId = "tokenizer.ggml.padding_token_id";
        /// <summary>Whether a BOS token starts every prompt.</summary>
        public const string AddBos = "tokenizer.ggml.add_bos_token";
        /// <summary>Whether an EOS token ends every prompt.</summary>
        public const string AddEos = "tokenizer.ggml.add_eos_token";
        /// <summary>Chat template (Jinja text).</summary>
        public const string ChatTemplate = "tokenizer.chat_template";

        /// <summary>Every special-token id key llama.cpp reads (u32; 0xFFFFFFFF, i.e. -1, means "none").</summary>
        public static readonly string[] SpecialIds =
        [
            BosId, EosId, UnknownId, PaddingId, "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id",
            "tokenizer.ggml.seperator_token_id", "tokenizer.ggml.mask_token_id", "tokenizer.ggml.cls_token_id",
            "tokenizer.ggml.prefix_token_id", "tokenizer.ggml.suffix_token_id", "tokenizer.ggml.middle_token_id",
            "tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.fim_mid_token_id",
            "tokenizer.ggml.fim_pad_token_id", "tokenizer.ggml.fim_rep_token_id", "tokenizer.ggml.fim_sep_token_id",
        ];

        /// <summary>Tokenizer families the pinned llama.cpp build knows.</summary>
        public static readonly string[] KnownModels = ["llama", "gpt2", "bert", "t5", "rwkv", "plamo2", "no_vocab", "none"];
    }

    /// <summary>adapter.* keys of LoRA adapter files.</summary>
    public static class Adapter
    {
        /// <summary>"lora".</summary>
        public const string Type = "adapter.type";
        /// <summary>LoRA alpha.</summary>
        public const string LoraAlpha = "adapter.lora.alpha";
    }

    /// <summary>The type a key's value must have, as llama.cpp reads it: a scalar type, or an array of an element type.</summary>
    /// <param name="Type">Scalar type (or <see cref="GgufValueType.Array"/>).</param>
    /// <param name="Element">Element type of an array (null for scalars).</param>
    /// <param name="OrArrayOf">For keys llama.cpp reads "as a value or a per-layer array", the array's element type.</param>
    public sealed record ExpectedType(GgufValueType Type, GgufValueType? Element = null, GgufValueType? OrArrayOf = null)
    {
        /// <summary>Whether <paramref name="v"/> has this type.</summary>
        public bool Matches(GgufValue v) =>
            v.Type == Type && (Type != GgufValueType.Array || v.ElementType == Element)
            || OrArrayOf is { } e && v.IsArray && (v.ElementType == e || (e == GgufValueType.UInt32 && v.ElementType == GgufValueType.Int32));

        /// <inheritdoc />
        public override string ToString() =>
            (Type == GgufValueType.Array ? $"array of {Name(Element!.Value)}" : Name(Type)) + (OrArrayOf is { } e ? $" (or an array of {Name(e)})" : "");
    }

    /// <summary>The GGUF spec's short type names (u32, f32, str, ...).</summary>
    public static string Name(GgufValueType t) => t switch
    {
        GgufValueType.UInt8 => "u8", GgufValueType.Int8 => "i8", GgufValueType.UInt16 => "u16", GgufValueType.Int16 => "i16",
        GgufValueType.UInt32 => "u32", GgufValueType.Int32 => "i32", GgufValueType.Float32 => "f32", GgufValueType.Bool => "bool",
        GgufValueType.String => "str", GgufValueType.Array => "array", GgufValueType.UInt64 => "u64", GgufValueType.Int64 => "i64",
        GgufValueType.Float64 => "f64", _ => $"type {(uint)t}",
    };

    /// <summary>The type llama.cpp reads <paramref name="key"/> as, or null for keys it does not read (any type is fine).</summary>
    public static ExpectedType? TypeOf(string key, string? arch)
    {
        if (Fixed.TryGetValue(key, out var t)) return t;
        if (Array.IndexOf(Tokenizer.SpecialIds, key) >= 0) return U32;
        if (arch is null || !key.StartsWith(arch + ".", StringComparison.Ordinal)) return null;
        return PerArch.GetValueOrDefault(key[(arch.Length + 1)..]);
    }

    private static readonly ExpectedType U32 = new(GgufValueType.UInt32);
    private static readonly ExpectedType F32 = new(GgufValueType.Float32);
    private static readonly ExpectedType Str = new(GgufValueType.String);
    private static readonly ExpectedType Bool = new(GgufValueType.Bool);
    private static readonly ExpectedType U32OrArray = new(GgufValueType.UInt32, OrArrayOf: GgufValueType.UInt32);

    private static readonly Dictionary<string, ExpectedType> Fixed = new(StringComparer.Ordinal)
    {
        [General.Architecture] = Str, [General.Type] = Str, [General.Name] = Str, [General.Alignment] = U32,
        [General.FileType] = U32, [General.QuantizationVersion] = U32,
        [Tokenizer.Model] = Str, [Tokenizer.Pre] = Str, [Tokenizer.ChatTemplate] = Str,
        [Tokenizer.Tokens] = new(GgufValueType.Array, GgufValueType.String),
        [Tokenizer.Scores] = new(GgufValueType.Array, GgufValueType.Float32),
        [Tokenizer.TokenType] = new(GgufValueType.Array, GgufValueType.Int32),
        [Tokenizer.Merges] = new(GgufValueType.Array, GgufValueType.String),
        [Tokenizer.AddBos] = Bool, [Tokenizer.AddEos] = Bool,
        ["tokenizer.ggml.add_space_prefix"] = Bool, ["tokenizer.ggml.remove_extra_whitespaces"] = Bool,
        [Adapter.Type] = Str, [Adapter.LoraAlpha] = F32,
        ["split.count"] = new(GgufValueType.UInt16), ["split.no"] = new(GgufValueType.UInt16), ["split.tensors.count"] = new(GgufValueType.Int32),
    };

    private static readonly Dictionary<string, ExpectedType> PerArch = new(StringComparer.Ordinal)
    {
        ["context_length"] = U32, ["embedding_length"] = U32, ["block_count"] = U32, ["vocab_size"] = U32,
        ["feed_forward_length"] = U32OrArray, ["expert_count"] = U32, ["expert_used_count"] = U32,
        ["attention.head_count"] = U32OrArray, ["attention.head_count_kv"] = U32OrArray,
        ["attention.key_length"] = U32, ["attention.value_length"] = U32,
        ["attention.layer_norm_rms_epsilon"] = F32, ["attention.layer_norm_epsilon"] = F32,
        ["rope.dimension_count"] = U32, ["rope.freq_base"] = F32, ["rope.scale_linear"] = F32,
        ["rope.scaling.factor"] = F32, ["rope.scaling.type"] = Str, ["rope.scaling.original_context_length"] = U32,
        ["use_parallel_residual"] = Bool, ["tensor_data_layout"] = Str,
    };
}
