using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Consort.Formats;
using Consort.Formats.Gguf;
using Consort.Formats.Safetensors;

namespace Consort.Weights.Lora;

/// <summary>Options of <see cref="LoraExtractor.Extract"/> (mergekit-extract-lora's, plus an energy threshold).</summary>
public sealed record LoraExtractOptions
{
    /// <summary>Largest rank per matrix (mergekit's --max-rank, default 128).</summary>
    public int MaxRank { get; init; } = 128;
    /// <summary>When set, each matrix gets the smallest rank whose singular values keep this share of ‖ΔW‖²_F (up to <see cref="MaxRank"/>).</summary>
    public double? Energy { get; init; }
    /// <summary>Singular values at or below this are dropped (mergekit's --sv-epsilon).</summary>
    public double SvEpsilon { get; init; }
    /// <summary>Split the singular values as √S into A and B (mergekit's default); else A = S Vᵀ, B = U.</summary>
    public bool DistributeScale { get; init; } = true;
    /// <summary>Only matrices whose name (either naming) matches one of these (default: all).</summary>
    public IReadOnlyList<string> Include { get; init; } = [];
    /// <summary>Matrices whose name matches one of these are left out.</summary>
    public IReadOnlyList<string> Exclude { get; init; } = [];
    /// <summary>Seed of the randomized SVD of large matrices.</summary>
    public int Seed { get; init; } = 42;

    /// <summary>Checks the options (ConfigException naming the option).</summary>
    public void Validate()
    {
        if (MaxRank < 1 || MaxRank > 65536) throw new ConfigException($"max rank {MaxRank}: it must be a whole number from 1 to 65536");
        if (Energy is double e && !(e > 0 && e <= 1)) throw new ConfigException($"energy {e}: it must be a share in (0, 1]");
        if (!double.IsFinite(SvEpsilon) || SvEpsilon < 0) throw new ConfigException($"sv epsilon {SvEpsilon}: it must be a finite number >= 0");
        foreach (var r in Include.Concat(Exclude))
            try { _ = new Regex(r); }
            catch (ArgumentException ex) { throw new ConfigException($"regex '{r}' is not valid: {ex.Message}"); }
    }
}

/// <summary>One extracted matrix.</summary>
/// <param name="Target">Tensor name in the base model's naming.</param>
/// <param name="Rank">Rank kept.</param>
/// <param name="Energy">Share of ‖ΔW‖²_F the kept singular values hold.</param>
/// <param name="RelativeError">‖ΔW − B A‖_F / ‖ΔW‖_F.</param>
public sealed record ExtractedModule(string Target, int Rank, double Energy, double RelativeError);

/// <summary>What an extraction wrote and left out.</summary>
/// <param name="Outputs">Files or folders written.</param>
/// <param name="Modules">Each decomposed matrix.</param>
/// <param name="Unrepresented">Tensors that differ but a LoRA adapter cannot hold (norms, embeddings), with ‖Δ‖_F / ‖W‖_F.</param>
/// <param name="Seconds">Wall time.</param>
public sealed record LoraExtractResult(IReadOnlyList<string> Outputs, IReadOnlyList<ExtractedModule> Modules, IReadOnlyList<(string Tensor, double RelativeChange)> Unrepresented, double Seconds);

/// <summary>
/// mergekit-extract-lora: the low-rank approximation of a fine-tune minus its base. Each 2-D weight the adapter formats
/// can hold (the blocks' projections and the output head) is decomposed by a truncated SVD, ΔW ≈ U S Vᵀ, rank given
/// or chosen by an energy threshold; A = √S Vᵀ and B = U √S. Written as a llama.cpp GGUF adapter (alpha 0: scale 1
/// whatever each matrix's rank) and/or a PEFT folder (lora_alpha = r with rank_pattern / alpha_pattern, as mergekit
/// writes it), in the base model's naming and rope layout converted as needed.
/// </summary>
public static class LoraExtractor
{
    /// <summary>Extracts <paramref name="model"/> − <paramref name="baseModel"/> into each of <paramref name="outputs"/> (.gguf: GGUF adapter; else a PEFT folder).</summary>
    public static LoraExtractResult Extract(string model, string baseModel, IReadOnlyList<string> outputs, LoraExtractOptions options,
        IProgress<(string Tensor, int Done, int Total)>? progress = null, CancellationToken ct = default)
    {
        options.Validate();
        if (outputs.Count == 0) throw new ConfigException("give at least one output (.gguf for a llama.cpp adapter, a folder for PEFT)");
        var sw = System.Diagnostics.Stopwatch.StartNew();
        using var ft = TensorSources.Open(model);
        using var bs = TensorSources.Open(baseModel);
        if (ft.Format != bs.Format) throw new ConsortException($"{Path.GetFileName(model)} is {ft.Format} but {Path.GetFileName(baseModel)} is {bs.Format}; convert one first");
        var problems = new List<string>();
        foreach (var t in bs.Tensors)
            if (ft.Find(t.Name) is not { } o) problems.Add($"{Path.GetFileName(model)} lacks {t.Name}");
            else if (!o.SameShape(t)) problems.Add($"{t.Name} is {t.ShapeText} in {Path.GetFileName(baseModel)} but {o.ShapeText} in {Path.GetFileName(model)}");
        if (problems.Count > 0) throw new ModelFileException(model, "cannot be compared with its base: " + string.Join("; ", problems.Take(12)));
        bool gguf = bs.Format == "gguf";
        var (heads, kvHeads) = Heads(bs);

        bool Wanted(string name)
        {
            var hf = TensorNames.ToHfStyle(name);
            bool Match(string r) => Regex.IsMatch(name, r) || Regex.IsMatch(hf, r);
            return (options.Include.Count == 0 || options.Include.Any(Match)) && !options.Exclude.Any(Match);
        }
        bool Decomposable(TensorEntry t) => t.Shape.Length == 2 && (TensorNames.LayerIndex(t.Name) is not null || t.Name is "output.weight" or "lm_head.weight");

        var modules = new List<ExtractedModule>();
        var updates = new List<(string Target, float[] A, float[] B, int Rank, int In, int Out)>();
        var unrepresented = new List<(string, double)>();
        var targets = bs.Tensors.Where(t => Wanted(t.Name)).ToList();
        int done = 0;
        foreach (var t in targets)
        {
            ct.ThrowIfCancellationRequested();
            var w = bs.ReadFloat32(t);
            var d = ft.ReadFloat32(t.Name);
            System.Numerics.Tensors.TensorPrimitives.Subtract(d, w, d);
            double change = Engine.VectorMath.SumSquares(d);
            if (change == 0) { progress?.Report((t.Name, ++done, targets.Count)); continue; }
            if (!Decomposable(t))
            {
                unrepresented.Add((t.Name, Math.Sqrt(change / Math.Max(1e-300, Engine.VectorMath.SumSquares(w)))));
                progress?.Report((t.Name, ++done, targets.Count));
                continue;
            }
            int rows = (int)t.Shape[0], cols = (int)t.Shape[1];
            var svd = TruncatedSvd.Compute(d, rows, cols, options.MaxRank, options.Seed);
            int rank = svd.Rank;
            if (options.SvEpsilon > 0) rank = Math.Min(rank, svd.S.Count(s => s > options.SvEpsilon));
            double kept = 0;
            if (options.Energy is double e)
            {
                int r = 0;
                for (; r < rank && kept < e * svd.FrobeniusSquared; r++) kept += svd.S[r] * svd.S[r];
                rank = Math.Max(1, r);
            }
            kept = svd.S.Take(rank).Sum(s => s * s);
            var (a, b) = Factors(svd, rank, rows, cols, options.DistributeScale);
            modules.Add(new ExtractedModule(t.Name, rank, kept / svd.FrobeniusSquared, Math.Sqrt(Math.Max(0, svd.FrobeniusSquared - kept) / svd.FrobeniusSquared)));
            updates.Add((t.Name, a, b, rank, cols, rows));
            progress?.Report((t.Name, ++done, targets.Count));
        }
        if (updates.Count == 0) throw new ConsortException($"{Path.GetFileName(model)} does not differ from {Path.GetFileName(baseModel)} in any matrix a LoRA adapter can hold");

        foreach (var output in outputs)
        {
            if (output.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
            {
                // GGUF adapters use GGUF names and llama.cpp's q/k row order (B's rows follow W's).
                LoraWriter.WriteGguf(output, updates.Select(u =>
                {
                    var name = gguf ? u.Target : TensorNames.HfToGguf(u.Target) ?? throw new ModelFileException(baseModel, $"tensor '{u.Target}' has no GGUF name");
                    var bb = !gguf && IsRope(name) ? TensorNames.PermuteForRope(u.B, u.Out, u.Rank, name.EndsWith("attn_q.weight") ? heads : kvHeads) : u.B;
                    return new LoraUpdate(name, u.A, bb, u.Rank, u.In, u.Out);
                }), alpha: 0);
            }
            else WritePeft(output, updates.Select(u =>
            {
                var name = gguf ? TensorNames.GgufToHf(u.Target) ?? throw new ModelFileException(baseModel, $"tensor '{u.Target}' has no Hugging Face name") : u.Target;
                var bb = gguf && IsRope(u.Target) ? TensorNames.PermuteForRope(u.B, u.Out, u.Rank, u.Target.EndsWith("attn_q.weight") ? heads : kvHeads, inverse: true) : u.B;
                return new LoraUpdate(name, u.A, bb, u.Rank, u.In, u.Out);
            }).ToList(), baseModel);
        }
        return new LoraExtractResult(outputs.Select(Path.GetFullPath).ToList(), modules, unrepresented, sw.Elapsed.TotalSeconds);
    }

    private static bool IsRope(string ggufName) => ggufName.EndsWith("attn_q.weight") || ggufName.EndsWith("attn_k.weight");

    private static (int Heads, int KvHeads) Heads(ITensorSource s)
    {
        if (s is GgufTensorSource g)
        {
            int h = (int)(g.File.GetInt((g.File.Architecture ?? "llama") + ".attention.head_count") ?? 0);
            return (h, (int)(g.File.GetInt((g.File.Architecture ?? "llama") + ".attention.head_count_kv") ?? h));
        }
        if (s is SafetensorsModel st && st.ReadConfig() is { } doc)
            using (doc)
            {
                var c = doc.RootElement;
                int h = c.TryGetProperty("num_attention_heads", out var hv) ? hv.GetInt32() : 0;
                return (h, c.TryGetProperty("num_key_value_heads", out var kv) ? kv.GetInt32() : h);
            }
        return (0, 0);
    }

    // A [rank, cols] = √S Vᵀ (or S Vᵀ) and B [rows, rank] = U √S (or U).
    private static (float[] A, float[] B) Factors(SvdResult svd, int rank, int rows, int cols, bool distribute)
    {
        int k = svd.Rank;
        var a = new float[rank * cols];
        var b = new float[rows * rank];
        for (int c = 0; c < rank; c++)
        {
            double sa = distribute ? Math.Sqrt(svd.S[c]) : svd.S[c], sb = distribute ? Math.Sqrt(svd.S[c]) : 1;
            for (int j = 0; j < cols; j++) a[c * cols + j] = (float)(sa * svd.V[j * k + c]);
            for (int i = 0; i < rows; i++) b[i * rank + c] = (float)(sb * svd.U[i * k + c]);
        }
        return (a, b);
    }

    // PEFT: base_model.model.<module>.lora_A.weight [r, in] and lora_B.weight [out, r]; r is the largest rank, the
    // others go to rank_pattern with alpha_pattern equal to them, so every module's scale is 1 (as mergekit writes it).
    private static void WritePeft(string folder, IReadOnlyList<LoraUpdate> updates, string baseModel)
    {
        folder = Path.GetFullPath(folder);
        if (File.Exists(folder)) throw new ConsortException($"{folder}: exists and is a file; a PEFT adapter is a folder (or give a .gguf path)");
        Directory.CreateDirectory(folder);
        using (var w = new SafetensorsWriter(Path.Combine(folder, "adapter_model.safetensors")))
        {
            w.SetMetadata("format", "pt");
            foreach (var u in updates)
            {
                var stem = "base_model.model." + u.Target[..^".weight".Length];
                w.AddTensor(stem + ".lora_A.weight", [u.Rank, u.In], GgmlType.F32);
                w.AddTensor(stem + ".lora_B.weight", [u.Out, u.Rank], GgmlType.F32);
            }
            foreach (var u in updates)
            {
                var stem = "base_model.model." + u.Target[..^".weight".Length];
                w.WriteTensor(stem + ".lora_A.weight", u.A);
                w.WriteTensor(stem + ".lora_B.weight", u.B);
            }
            w.Commit();
        }
        int r = updates.Max(u => u.Rank);
        var pattern = new JsonObject();
        foreach (var u in updates.Where(u => u.Rank != r)) pattern[u.Target[..^".weight".Length]] = u.Rank;
        var config = new JsonObject
        {
            ["base_model_name_or_path"] = baseModel,
            ["peft_type"] = "LORA",
            ["task_type"] = "CAUSAL_LM",
            ["r"] = r,
            ["lora_alpha"] = r,
            ["rank_pattern"] = pattern,
            ["alpha_pattern"] = pattern.DeepClone(),
            ["target_modules"] = new JsonArray(updates.Select(u => (JsonNode)u.Target[..^".weight".Length].Split('.')[^1]).DistinctBy(n => n.GetValue<string>()).ToArray()),
            ["modules_to_save"] = new JsonArray(),
            ["use_rslora"] = false,
            ["lora_dropout"] = 0.0,
            ["fan_in_fan_out"] = false,
            ["inference_mode"] = true,
        };
        File.WriteAllText(Path.Combine(folder, "adapter_config.json"), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }
}
