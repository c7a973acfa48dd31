using System.Globalization;

namespace Consort.Formats.Gguf;

/// <summary>What <see cref="GgufValidator"/> found: problems (empty when llama.cpp can load and run the file).</summary>
/// <param name="Path">The file.</param>
/// <param name="Problems">Each problem, one sentence, names escaped and cut.</param>
/// <param name="Architecture">general.architecture, when present.</param>
/// <param name="TensorsChecked">Whether the tensor set, shapes and types were checked against the architecture
/// (llama and LoRA adapters); other architectures get the generic checks and rely on the first-load probe.</param>
public sealed record GgufVerdict(string Path, IReadOnlyList<string> Problems, string? Architecture, bool TensorsChecked)
{
    /// <summary>True without problems.</summary>
    public bool IsValid => Problems.Count == 0;

    /// <summary>The problems as one line.</summary>
    public string Summary => Problems.Count switch
    {
        0 => "valid",
        1 => Problems[0],
        _ => $"{Problems.Count}{(Problems.Count >= GgufValidator.MaxProblems ? "+" : "")} problems: " + string.Join("; ", Problems.Take(5))
             + (Problems.Count > 5 ? $"; and {Problems.Count - 5} more" : ""),
    };

    /// <summary>Throws a <see cref="ModelFileException"/> with <see cref="Summary"/> when there are problems.</summary>
    public void ThrowIfInvalid()
    {
        if (!IsValid) throw new ModelFileException(Path, Summary);
    }
}

/// <summary>
/// Semantic validation of a GGUF file before llama.cpp sees it. llama.cpp checks some things and fails cleanly,
/// but answers others with GGML_ASSERT, std::out_of_range or a segfault at load or first decode, which kills the
/// process. This checks, for the llama family: the tensor set, each tensor's shape against the hyperparameters and
/// its type against what llama.cpp's CPU kernels accept; hyperparameter ranges and divisibility; expert counts only
/// with expert tensors; every metadata value's type exactly as llama.cpp reads it; and the vocabulary (non-empty,
/// unique, valid UTF-8 token strings, special ids in range, a tokenizer family llama.cpp knows).
/// </summary>
public static class GgufValidator
{
    /// <summary>At most this many problems are collected (a badly broken file would otherwise list thousands).</summary>
    public const int MaxProblems = 20;

    /// <summary>Most layers llama.cpp supports (LLAMA_MAX_LAYERS).</summary>
    public const int MaxLayers = 512;
    /// <summary>Most experts llama.cpp supports (LLAMA_MAX_EXPERTS in the pinned build).</summary>
    public const int MaxExperts = 256;
    /// <summary>Largest training context accepted (10M-token models exist; beyond 2^26 is corruption).</summary>
    public const long MaxContextLength = 1L << 26;
    /// <summary>Largest width of any hyperparameter (embedding, feed-forward, head size).</summary>
    public const long MaxWidth = 1L << 20;

    /// <summary>
    /// Types ggml's CPU backend can use as the weight of a matrix multiply or an embedding lookup. Q8_1 and Q8_K
    /// are internal activation formats and the integer types have no kernels: llama.cpp segfaults on them.
    /// </summary>
    public static readonly IReadOnlySet<GgmlType> MatrixTypes = new HashSet<GgmlType>
    {
        GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.Q8_0,
        GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.IQ2_XXS, GgmlType.IQ2_XS,
        GgmlType.IQ3_XXS, GgmlType.IQ1_S, GgmlType.IQ4_NL, GgmlType.IQ3_S, GgmlType.IQ2_S, GgmlType.IQ4_XS, GgmlType.IQ1_M,
        GgmlType.TQ1_0, GgmlType.TQ2_0, GgmlType.MXFP4,
    };

    /// <summary>Validates an open file.</summary>
    public static GgufVerdict Validate(GgufFile file) =>
        Validate(file.Path, file.Metadata, file.Tensors, file.FirstInvalidUtf8Token);

    /// <summary>Validates metadata and tensor infos (of a file, or of one being written).</summary>
    /// <param name="path">The file, for messages.</param>
    /// <param name="metadata">Metadata by key.</param>
    /// <param name="tensors">Tensor infos (dimensions innermost-first).</param>
    /// <param name="firstInvalidUtf8Token">Id of the first token that is not valid UTF-8, or -1.</param>
    public static GgufVerdict Validate(string path, IReadOnlyDictionary<string, GgufValue> metadata, IReadOnlyList<GgufTensorInfo> tensors, int firstInvalidUtf8Token = -1)
    {
        var c = new Checker(metadata, tensors);
        string? arch = metadata.GetValueOrDefault(GgufKeys.General.Architecture)?.Value as string;
        c.CheckTypes(arch);
        if (arch is null) c.Problem($"{GgufKeys.General.Architecture} is missing");
        bool adapter = metadata.GetValueOrDefault(GgufKeys.General.Type)?.Value as string == "adapter";
        bool tensorsChecked = false;
        if (adapter)
        {
            c.CheckAdapter();
            tensorsChecked = true;
        }
        else
        {
            c.CheckVocabulary(firstInvalidUtf8Token);
            if (tensors.Count == 0) c.Problem("no tensors");
            else if (arch == "llama")
            {
                c.CheckLlama(arch);
                tensorsChecked = true;
            }
        }
        return new GgufVerdict(path, c.Problems, arch, tensorsChecked);
    }

    /// <summary>Validates and throws a <see cref="ModelFileException"/> on the first verdict with problems.</summary>
    public static void ThrowIfInvalid(GgufFile file) => Validate(file).ThrowIfInvalid();

    private enum Kind { Vector, Matrix }

    private sealed class Checker(IReadOnlyDictionary<string, GgufValue> md, IReadOnlyList<GgufTensorInfo> tensors)
    {
        public List<string> Problems { get; } = [];
        private readonly HashSet<string> _badType = new(StringComparer.Ordinal);

        public void Problem(string message)
        {
            if (Problems.Count < MaxProblems) Problems.Add(message);
        }

        private static string Q(string s) => MessageText.Quote(s);

        private static string Describe(GgufValue v) => v.IsArray ? $"an array of {GgufKeys.Name(v.ElementType)}" : GgufKeys.Name(v.Type);

        // ---- metadata types ----

        public void CheckTypes(string? arch)
        {
            foreach (var (key, value) in md)
            {
                var expected = GgufKeys.TypeOf(key, arch);
                if (expected is null || expected.Matches(value)) continue;
                _badType.Add(key);
                Problem($"metadata {Q(key)} is {Describe(value)} but llama.cpp reads it as {expected}");
            }
        }

        /// <summary>An integer scalar (null when absent or of the wrong type, which <see cref="CheckTypes"/> reported).</summary>
        private long? Int(string key) => !_badType.Contains(key) && md.GetValueOrDefault(key) is { IsArray: false } v && v.Value is not (string or float or double or bool)
            ? v.Value is ulong u ? (long)Math.Min(u, long.MaxValue) : v.AsInt64()
            : null;

        private double? Float(string key) => !_badType.Contains(key) && md.GetValueOrDefault(key) is { IsArray: false, Value: float or double } v ? v.AsDouble() : null;

        /// <summary>A per-layer value: a scalar, or an array with one entry per layer.</summary>
        private long[]? PerLayer(string key, int layers)
        {
            if (_badType.Contains(key) || md.GetValueOrDefault(key) is not { } v) return null;
            if (!v.IsArray) return Int(key) is { } x ? Enumerable.Repeat(x, layers).ToArray() : null;
            var arr = (Array)v.Value;
            if (arr.Length != layers)
            {
                _badType.Add(key);
                Problem($"metadata {Q(key)} has {arr.Length} per-layer values but the model has {layers} layers");
                return null;
            }
            var result = new long[layers];
            for (int i = 0; i < layers; i++) result[i] = Convert.ToInt64(arr.GetValue(i), CultureInfo.InvariantCulture);
            return result;
        }

        private long Range(string key, long? value, long min, long max, bool required = true)
        {
            if (value is null)
            {
                if (required && !_badType.Contains(key)) Problem($"metadata {Q(key)} is missing");
                return 0;
            }
            if (value < min || value > max)
            {
                Problem($"metadata {Q(key)} is {value}; it must be {min}..{max}");
                return 0;
            }
            return value.Value;
        }

        // ---- vocabulary ----

        public void CheckVocabulary(int firstInvalidUtf8)
        {
            if (md.GetValueOrDefault(GgufKeys.Tokenizer.Tokens)?.Value is not string[] tokens)
            {
                if (!_badType.Contains(GgufKeys.Tokenizer.Tokens)) Problem($"no tokenizer ({GgufKeys.Tokenizer.Tokens} is missing)");
                return;
            }
            int n = tokens.Length;
            if (n == 0) Problem("the vocabulary is empty");
            if (md.GetValueOrDefault(GgufKeys.Tokenizer.Model)?.Value is not string model)
            {
                if (!_badType.Contains(GgufKeys.Tokenizer.Model)) Problem($"{GgufKeys.Tokenizer.Model} is missing (llama.cpp needs the tokenizer family)");
            }
            else if (!GgufKeys.Tokenizer.KnownModels.Contains(model))
                Problem($"{GgufKeys.Tokenizer.Model} is {Q(model)}, not a tokenizer llama.cpp knows ({string.Join(", ", GgufKeys.Tokenizer.KnownModels)})");
            else if (model == "gpt2" && !md.ContainsKey(GgufKeys.Tokenizer.Merges))
                Problem($"a gpt2 (BPE) tokenizer needs {GgufKeys.Tokenizer.Merges}");

            int empty = 0, firstEmpty = -1, withNul = 0, firstNul = -1;
            var ids = new Dictionary<string, int>(n, StringComparer.Ordinal);
            int duplicates = 0;
            string? firstDuplicate = null;
            for (int i = 0; i < n; i++)
            {
                string t = tokens[i];
                // llama.cpp reads token texts as C strings: a NUL ends them, so "ab\0c" is "ab" (a duplicate, or empty).
                if (t.Contains('\0'))
                {
                    if (withNul++ == 0) firstNul = i;
                    continue;
                }
                if (t.Length == 0)
                {
                    if (empty++ == 0) firstEmpty = i;
                    continue;
                }
                if (!ids.TryAdd(t, i) && duplicates++ == 0)
                    firstDuplicate = $"tokens {ids[t]} and {i} are both {Q(t, 40)}";
            }
            if (withNul > 0) Problem(withNul == 1 ? $"token {firstNul} contains a NUL character (llama.cpp would cut it there)" : $"{withNul} token strings contain a NUL character (the first is token {firstNul})");
            if (empty > 0) Problem(empty == 1 ? $"token {firstEmpty} is an empty string" : $"{empty} token strings are empty (the first is token {firstEmpty})");
            if (duplicates > 0) Problem($"token strings must be unique (llama.cpp asserts on duplicates), but {firstDuplicate}" + (duplicates > 1 ? $" ({duplicates} duplicates in all)" : ""));
            if (firstInvalidUtf8 >= 0) Problem($"token {firstInvalidUtf8} is not valid UTF-8");

            foreach (var key in new[] { GgufKeys.Tokenizer.Scores, GgufKeys.Tokenizer.TokenType })
                if (!_badType.Contains(key) && md.GetValueOrDefault(key) is { IsArray: true } arr && arr.Count < n)
                    Problem($"metadata {Q(key)} has {arr.Count} entries for {n} tokens (llama.cpp would read past its end)");
            foreach (var key in GgufKeys.Tokenizer.SpecialIds)
                if (Int(key) is { } id && id != uint.MaxValue && id >= n)
                    Problem($"metadata {Q(key)} is {id}, outside the vocabulary of {n} tokens");
        }

        private static string Q(string s, int max) => MessageText.Quote(s, max);

        // ---- llama ----

        public void CheckLlama(string arch)
        {
            int layers = (int)Range(GgufKeys.Llm.BlockCount(arch), Int(GgufKeys.Llm.BlockCount(arch)), 1, MaxLayers);
            long embd = Range(GgufKeys.Llm.EmbeddingLength(arch), Int(GgufKeys.Llm.EmbeddingLength(arch)), 1, MaxWidth);
            Range(GgufKeys.Llm.ContextLength(arch), Int(GgufKeys.Llm.ContextLength(arch)), 1, MaxContextLength);
            CheckEpsilon(GgufKeys.Llm.RmsEpsilon(arch), required: true);
            CheckPositive(GgufKeys.Llm.RopeFreqBase(arch), allowZero: false);
            CheckPositive(GgufKeys.Llm.RopeScaleLinear(arch), allowZero: true);
            CheckPositive(GgufKeys.Llm.RopeScalingFactor(arch), allowZero: true);
            long experts = Range(GgufKeys.Llm.ExpertCount(arch), Int(GgufKeys.Llm.ExpertCount(arch)), 0, MaxExperts, required: false);
            long used = Int(GgufKeys.Llm.ExpertUsedCount(arch)) ?? 0;
            bool hasExpertTensors = tensors.Any(t => t.Name.Contains("_exps.", StringComparison.Ordinal) || t.Name.Contains(".ffn_gate_inp.", StringComparison.Ordinal));
            if (experts > 0)
            {
                if (used < 1 || used > experts) Problem($"metadata {Q(GgufKeys.Llm.ExpertUsedCount(arch))} is {used}; with {experts} experts it must be 1..{experts}");
                if (!hasExpertTensors) Problem($"metadata {Q(GgufKeys.Llm.ExpertCount(arch))} is {experts} but the file has no expert tensors (a dense model must not declare experts)");
            }
            else if (used > 0) Problem($"metadata {Q(GgufKeys.Llm.ExpertUsedCount(arch))} is {used} but the model has no experts");
            else if (hasExpertTensors) Problem($"the file has expert tensors but no {Q(GgufKeys.Llm.ExpertCount(arch))}");
            bool moe = experts > 0 && hasExpertTensors; // else the tensors are checked as the dense model they are
            if (layers == 0 || embd == 0) return; // shapes cannot be derived

            var heads = PerLayer(GgufKeys.Llm.HeadCount(arch), layers);
            if (heads is null)
            {
                if (!_badType.Contains(GgufKeys.Llm.HeadCount(arch))) Problem($"metadata {Q(GgufKeys.Llm.HeadCount(arch))} is missing");
                return;
            }
            var kvHeads = PerLayer(GgufKeys.Llm.HeadCountKv(arch), layers) ?? heads;
            var ff = PerLayer(GgufKeys.Llm.FeedForwardLength(arch), layers);
            if (ff is null)
            {
                if (!_badType.Contains(GgufKeys.Llm.FeedForwardLength(arch))) Problem($"metadata {Q(GgufKeys.Llm.FeedForwardLength(arch))} is missing");
                return;
            }
            long? keyLength = Int(GgufKeys.Llm.KeyLength(arch)), valueLength = Int(GgufKeys.Llm.ValueLength(arch));
            long? rot = Int(GgufKeys.Llm.RopeDimensionCount(arch));
            int problemsBefore = Problems.Count;
            var layerShapes = new (long Heads, long KvHeads, long HeadK, long HeadV, long Ff)[layers];
            for (int i = 0; i < layers && Problems.Count == problemsBefore; i++)
            {
                string at = layers > 1 && (heads.Distinct().Count() > 1 || kvHeads.Distinct().Count() > 1 || ff.Distinct().Count() > 1) ? $" (layer {i})" : "";
                long h = heads[i], hkv = kvHeads[i];
                if (h < 1 || h > MaxWidth) { Problem($"metadata {Q(GgufKeys.Llm.HeadCount(arch))} is {h}{at}; it must be at least 1"); break; }
                if (hkv < 1 || hkv > h) { Problem($"metadata {Q(GgufKeys.Llm.HeadCountKv(arch))} is {hkv}{at}; it must be 1..{h} (the head count)"); break; }
                if (h % hkv != 0) { Problem($"the head count {h} is not a multiple of the key/value head count {hkv}{at}"); break; }
                if (ff[i] < 1 || ff[i] > MaxWidth) { Problem($"metadata {Q(GgufKeys.Llm.FeedForwardLength(arch))} is {ff[i]}{at}; it must be 1..{MaxWidth}"); break; }
                if (keyLength is null && embd % h != 0) { Problem($"the embedding length {embd} is not a multiple of the head count {h}{at}"); break; }
                long hk = keyLength ?? embd / h, hv = valueLength ?? embd / h;
                if (hk < 1 || hk > MaxWidth || hv < 1 || hv > MaxWidth) { Problem($"head sizes {hk}/{hv} are out of range"); break; }
                layerShapes[i] = (h, hkv, hk, hv, ff[i]);
            }
            if (Problems.Count > problemsBefore) return;
            long headK = layerShapes[0].HeadK;
            long nRot = rot ?? headK;
            // llama.cpp requires rope over the whole head for llama, and ggml's rope kernels assert on odd sizes.
            if (nRot != headK) Problem($"metadata {Q(GgufKeys.Llm.RopeDimensionCount(arch))} is {nRot} but llama needs it equal to the head size {headK}");
            else if (nRot % 2 != 0) Problem($"the head size {headK} is odd; rope needs an even size");

            var expected = new Dictionary<string, (long[] Dims, Kind Kind, bool Required)>(StringComparer.Ordinal);
            long vocab = md.GetValueOrDefault(GgufKeys.Tokenizer.Tokens)?.Value is string[] toks ? toks.Length : 0;
            if (vocab > 0)
            {
                expected["token_embd.weight"] = ([embd, vocab], Kind.Matrix, true);
                expected["output.weight"] = ([embd, vocab], Kind.Matrix, false);
            }
            expected["output_norm.weight"] = ([embd], Kind.Vector, true);
            expected["rope_freqs.weight"] = ([Math.Max(1, nRot / 2)], Kind.Vector, false);
            for (int i = 0; i < layers; i++)
            {
                var (h, hkv, hk, hv, f) = layerShapes[i];
                string b = $"blk.{i}.";
                expected[b + "attn_norm.weight"] = ([embd], Kind.Vector, true);
                expected[b + "attn_q.weight"] = ([embd, hk * h], Kind.Matrix, true);
                expected[b + "attn_k.weight"] = ([embd, hk * hkv], Kind.Matrix, true);
                expected[b + "attn_v.weight"] = ([embd, hv * hkv], Kind.Matrix, true);
                expected[b + "attn_output.weight"] = ([hv * h, embd], Kind.Matrix, true);
                expected[b + "attn_q.bias"] = ([hk * h], Kind.Vector, false);
                expected[b + "attn_k.bias"] = ([hk * hkv], Kind.Vector, false);
                expected[b + "attn_v.bias"] = ([hv * hkv], Kind.Vector, false);
                expected[b + "attn_output.bias"] = ([embd], Kind.Vector, false);
                expected[b + "ffn_norm.weight"] = ([embd], Kind.Vector, true);
                if (moe)
                {
                    expected[b + "ffn_gate_inp.weight"] = ([embd, experts], Kind.Matrix, true);
                    expected[b + "ffn_gate_exps.weight"] = ([embd, f, experts], Kind.Matrix, true);
                    expected[b + "ffn_down_exps.weight"] = ([f, embd, experts], Kind.Matrix, true);
                    expected[b + "ffn_up_exps.weight"] = ([embd, f, experts], Kind.Matrix, true);
                }
                else
                {
                    expected[b + "ffn_gate.weight"] = ([embd, f], Kind.Matrix, true);
                    expected[b + "ffn_down.weight"] = ([f, embd], Kind.Matrix, true);
                    expected[b + "ffn_up.weight"] = ([embd, f], Kind.Matrix, true);
                    expected[b + "ffn_gate.bias"] = ([f], Kind.Vector, false);
                    expected[b + "ffn_down.bias"] = ([embd], Kind.Vector, false);
                    expected[b + "ffn_up.bias"] = ([f], Kind.Vector, false);
                }
            }

            var unknown = new List<string>();
            foreach (var t in tensors)
            {
                if (!expected.TryGetValue(t.Name, out var e))
                {
                    unknown.Add(t.Name);
                    continue;
                }
                if (!t.Dimensions.AsSpan().SequenceEqual(e.Dims))
                    Problem($"tensor {Q(t.Name)} has shape {t.ShapeText} but the hyperparameters give [{string.Join(", ", e.Dims)}]");
                CheckType(t, e.Kind);
            }
            if (unknown.Count > 0)
                Problem($"{(unknown.Count == 1 ? "tensor" : $"{unknown.Count} tensors")} not part of a {layers}-layer llama model: {string.Join(", ", unknown.Take(3).Select(n => Q(n, 60)))}{(unknown.Count > 3 ? ", ..." : "")}");
            var present = tensors.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
            var missing = expected.Where(kv => kv.Value.Required && !present.Contains(kv.Key)).Select(kv => kv.Key).ToList();
            if (missing.Count > 0)
                Problem($"{(missing.Count == 1 ? "tensor" : $"{missing.Count} tensors")} missing: {string.Join(", ", missing.Take(3).Select(n => Q(n)))}{(missing.Count > 3 ? ", ..." : "")}");
        }

        private void CheckType(GgufTensorInfo t, Kind kind)
        {
            // Norm weights and biases are added or multiplied element-wise with F32 activations: ggml's CPU
            // binary ops abort on any other type. Matrices need a type with matmul / get_rows kernels.
            if (kind == Kind.Vector && t.Type != GgmlType.F32)
                Problem($"tensor {Q(t.Name)} is {t.Type}; llama.cpp needs F32 for 1-D weights (it aborts on other types)");
            else if (kind == Kind.Matrix && !MatrixTypes.Contains(t.Type))
                Problem($"tensor {Q(t.Name)} is {t.Type}, which llama.cpp cannot use as a weight matrix (it crashes); use F32, F16, BF16 or a quantized type such as Q8_0");
        }

        private void CheckEpsilon(string key, bool required)
        {
            if (Float(key) is not { } eps)
            {
                if (required && !_badType.Contains(key)) Problem($"metadata {Q(key)} is missing");
                return;
            }
            if (!double.IsFinite(eps) || eps <= 0 || eps >= 1)
                Problem($"metadata {Q(key)} is {eps.ToString(CultureInfo.InvariantCulture)}; it must be in (0, 1) (llama.cpp asserts eps >= 0)");
        }

        private void CheckPositive(string key, bool allowZero)
        {
            if (Float(key) is not { } v) return;
            if (!double.IsFinite(v) || v < 0 || (!allowZero && v == 0))
                Problem($"metadata {Q(key)} is {v.ToString(CultureInfo.InvariantCulture)}; it must be a finite number {(allowZero ? ">= 0" : "> 0")}");
        }

        // ---- LoRA adapters ----

        public void CheckAdapter()
        {
            if (md.GetValueOrDefault(GgufKeys.Adapter.Type)?.Value is not string type)
                Problem($"{GgufKeys.Adapter.Type} is missing (llama.cpp loads only \"lora\" adapters)");
            else if (type != "lora") Problem($"{GgufKeys.Adapter.Type} is {Q(type)}; llama.cpp loads only \"lora\" adapters");
            if (Float(GgufKeys.Adapter.LoraAlpha) is { } alpha && !double.IsFinite(alpha))
                Problem($"metadata {Q(GgufKeys.Adapter.LoraAlpha)} is {alpha.ToString(CultureInfo.InvariantCulture)}");
            var byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
            if (tensors.Count == 0) Problem("the adapter has no tensors");
            foreach (var t in tensors)
            {
                bool a = t.Name.EndsWith(".lora_a", StringComparison.Ordinal), b = t.Name.EndsWith(".lora_b", StringComparison.Ordinal);
                if (!a && !b)
                {
                    Problem($"tensor {Q(t.Name)} is not a LoRA tensor (names end in .lora_a or .lora_b)");
                    continue;
                }
                CheckType(t, Kind.Matrix);
                if (!a) continue;
                string target = t.Name[..^".lora_a".Length];
                if (!byName.TryGetValue(target + ".lora_b", out var bt))
                {
                    Problem($"tensor {Q(t.Name)} has no matching {Q(target + ".lora_b")}");
                    continue;
                }
                // lora_a is {n_in, r}, lora_b is {r, n_out}.
                if (t.Dimensions.Length != 2 || bt.Dimensions.Length != 2 || t.Dimensions[1] != bt.Dimensions[0])
                    Problem($"LoRA pair {Q(target)} has shapes {t.ShapeText} and {bt.ShapeText}; expected [n_in, r] and [r, n_out]");
            }
            foreach (var t in tensors.Where(t => t.Name.EndsWith(".lora_b", StringComparison.Ordinal)))
                if (!byName.ContainsKey(t.Name[..^".lora_b".Length] + ".lora_a"))
                    Problem($"tensor {Q(t.Name)} has no matching .lora_a");
        }
    }
}
