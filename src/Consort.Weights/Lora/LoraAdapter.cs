using System.Text.Json;
using Consort.Formats;
using Consort.Formats.Gguf;
using Consort.Formats.Safetensors;

namespace Consort.Weights.Lora;

/// <summary>One adapted weight: ΔW = B A with A [r, in] and B [out, r] (outermost-first).</summary>
/// <param name="Target">Name of the adapted base tensor (GGUF or Hugging Face naming, as the adapter states it).</param>
/// <param name="A">The A entry.</param>
/// <param name="B">The B entry.</param>
public sealed record LoraPair(string Target, TensorEntry A, TensorEntry B)
{
    /// <summary>Rank.</summary>
    public int Rank => (int)A.Shape[0];
    /// <summary>This pair's lora_alpha when it differs from the adapter's (PEFT alpha_pattern), else null.</summary>
    public double? Alpha { get; init; }
}

/// <summary>
/// A LoRA adapter read lazily from disk: GGUF adapters as llama.cpp writes them (X.weight.lora_a {in, r},
/// X.weight.lora_b {r, out}, adapter.lora.alpha) or PEFT folders (adapter_model.safetensors +
/// adapter_config.json with r and lora_alpha). ΔW for a target is <see cref="Scale"/> * B A.
/// </summary>
public sealed class LoraAdapter : IDisposable
{
    private readonly ITensorSource _source;

    private LoraAdapter(string path, ITensorSource source, IReadOnlyList<LoraPair> pairs, double alpha, bool hfNames, bool rsLora)
    {
        Path = path; _source = source; Pairs = pairs; Alpha = alpha; UsesHfNames = hfNames; RsLora = rsLora;
    }

    /// <summary>File or folder.</summary>
    public string Path { get; }
    /// <summary>Adapted weights.</summary>
    public IReadOnlyList<LoraPair> Pairs { get; }
    /// <summary>lora_alpha (0 means "no alpha scaling", as in llama.cpp).</summary>
    public double Alpha { get; }
    /// <summary>True for PEFT adapters (targets in Hugging Face naming and rope layout).</summary>
    public bool UsesHfNames { get; }
    /// <summary>PEFT use_rslora: scale is alpha / sqrt(r).</summary>
    public bool RsLora { get; }
    /// <summary>Rank (of the first pair; adapters normally share one).</summary>
    public int Rank => Pairs.Count == 0 ? 0 : Pairs[0].Rank;

    /// <summary>The factor on B A: alpha / r (alpha / sqrt r for rsLoRA), or 1 when alpha is 0 (llama.cpp's rule).</summary>
    public double ScaleFor(LoraPair p) => (p.Alpha ?? Alpha) is var a && a == 0 ? 1 : RsLora ? a / Math.Sqrt(p.Rank) : a / p.Rank;

    /// <summary>Reads A of a pair as F32 ([r, in] row-major).</summary>
    public float[] ReadA(LoraPair p) => _source.ReadFloat32(p.A);
    /// <summary>Reads B of a pair as F32 ([out, r] row-major).</summary>
    public float[] ReadB(LoraPair p) => _source.ReadFloat32(p.B);

    /// <summary>Opens a GGUF adapter file or a PEFT folder (or its adapter_model.safetensors).</summary>
    public static LoraAdapter Open(string path)
    {
        path = System.IO.Path.GetFullPath(path);
        if (path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)) return OpenGguf(path);
        var folder = Directory.Exists(path) ? path : System.IO.Path.GetDirectoryName(path)!;
        return OpenPeft(folder);
    }

    private static LoraAdapter OpenGguf(string path)
    {
        var file = GgufFile.Open(path);
        try
        {
            if (file.FileKind != "adapter" || file.GetString("adapter.type") != "lora")
                throw new ModelFileException(path, $"not a LoRA adapter (general.type = '{file.FileKind}', adapter.type = '{file.GetString("adapter.type")}')");
            var src = new GgufTensorSource(file);
            var pairs = Pair(src, path, ".lora_a", ".lora_b");
            return new LoraAdapter(path, src, pairs, file.GetFloat("adapter.lora.alpha") ?? 0, false, false);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private static LoraAdapter OpenPeft(string folder)
    {
        var cfgPath = System.IO.Path.Combine(folder, "adapter_config.json");
        if (!File.Exists(cfgPath)) throw new ModelFileException(cfgPath, "not found (a PEFT adapter folder needs adapter_config.json)");
        double alpha; int r; bool rs;
        Dictionary<string, double> rankPattern, alphaPattern;
        try
        {
            using var doc = SafeJson.ParseDocumentFile(cfgPath, Limits.MaxConfigBytes, "an adapter config", SafeJson.Kind.Model);
            var c = doc.RootElement;
            if (c.TryGetProperty("peft_type", out var pt) && pt.GetString() is { } type && type != "LORA")
                throw new ModelFileException(cfgPath, $"peft_type '{Limits.ForMessage(type)}' is not LORA");
            r = c.TryGetProperty("r", out var rv) ? rv.GetInt32() : throw new ModelFileException(cfgPath, "missing 'r'");
            alpha = c.TryGetProperty("lora_alpha", out var av) ? av.GetDouble() : r;
            rs = c.TryGetProperty("use_rslora", out var rsv) && rsv.ValueKind == JsonValueKind.True;
            // Per-module ranks and alphas (PEFT's rank_pattern / alpha_pattern: keys match module names' tails).
            Dictionary<string, double> Pattern(string key) => c.TryGetProperty(key, out var pv) && pv.ValueKind == JsonValueKind.Object
                ? pv.EnumerateObject().ToDictionary(x => x.Name, x => x.Value.GetDouble()) : [];
            rankPattern = Pattern("rank_pattern");
            alphaPattern = Pattern("alpha_pattern");
        }
        catch (JsonException e) { throw new ModelFileException(cfgPath, "is not valid JSON: " + e.Message, e); }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new ModelFileException(cfgPath, "'peft_type' must be text, 'r' a whole number, 'lora_alpha' a number and rank_pattern/alpha_pattern objects of numbers", e);
        }
        double? Find(Dictionary<string, double> pattern, string module)
        {
            // Patterns come from a user's file: a bounded match time keeps a pathological pattern from hanging the load.
            foreach (var (k, v) in pattern)
            {
                try
                {
                    if (System.Text.RegularExpressions.Regex.IsMatch(module, $"(.*\\.)?({k})$", System.Text.RegularExpressions.RegexOptions.None, TimeSpan.FromSeconds(1))) return v;
                }
                catch (ArgumentException e) // RegexParseException and RegexMatchTimeoutException both derive from it
                {
                    throw new ModelFileException(cfgPath, $"pattern '{Limits.ForMessage(k)}' is not a valid module pattern ({e.Message})", e);
                }
            }
            return null;
        }
        var weights = System.IO.Path.Combine(folder, "adapter_model.safetensors");
        var src = SafetensorsModel.Open(weights);
        try
        {
            var pairs = Pair(src, weights, ".lora_A.weight", ".lora_B.weight", peft: true);
            for (int i = 0; i < pairs.Count; i++)
            {
                var module = pairs[i].Target[..^".weight".Length];
                int expected = (int)(Find(rankPattern, module) ?? r);
                if (pairs[i].Rank != expected) throw new ModelFileException(weights, $"tensor '{pairs[i].A.Name}' has rank {pairs[i].Rank} but adapter_config.json says r = {expected}");
                if (Find(alphaPattern, module) is double a) pairs[i] = pairs[i] with { Alpha = a };
            }
            return new LoraAdapter(folder, src, pairs, alpha, true, rs);
        }
        catch
        {
            src.Dispose();
            throw;
        }
    }

    private static List<LoraPair> Pair(ITensorSource src, string path, string aSuffix, string bSuffix, bool peft = false)
    {
        var pairs = new List<LoraPair>();
        foreach (var a in src.Tensors.Where(t => t.Name.EndsWith(aSuffix, StringComparison.Ordinal)))
        {
            var stem = a.Name[..^aSuffix.Length];
            var b = src.Find(stem + bSuffix) ?? throw new ModelFileException(path, $"tensor '{a.Name}' has no matching '{stem + bSuffix}'");
            if (a.Shape.Length != 2 || b.Shape.Length != 2 || a.Shape[0] != b.Shape[1])
                throw new ModelFileException(path, $"LoRA pair '{stem}': A {a.ShapeText} and B {b.ShapeText} do not multiply (need A [r, in], B [out, r])");
            string target = peft ? PeftTarget(stem) : stem;
            pairs.Add(new LoraPair(target, a, b));
        }
        if (pairs.Count == 0) throw new ModelFileException(path, $"no LoRA tensors (*{aSuffix} / *{bSuffix}) found");
        return pairs;
    }

    // base_model.model.model.layers.0.self_attn.q_proj -> model.layers.0.self_attn.q_proj.weight
    private static string PeftTarget(string stem)
    {
        const string prefix = "base_model.model.";
        var s = stem.StartsWith(prefix, StringComparison.Ordinal) ? stem[prefix.Length..] : stem;
        return s + ".weight";
    }

    /// <inheritdoc />
    public void Dispose() => _source.Dispose();
}
