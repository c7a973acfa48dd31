using System.Diagnostics;
using Consort.Formats;
using Consort.Formats.Gguf;
using Consort.Formats.Safetensors;
using Consort.Weights.Engine;

namespace Consort.Weights.Moe;

/// <summary>Computes what the gates are built from; the CLI implements it with llama.cpp (this project does not reference it).</summary>
public interface IHiddenStateSource
{
    /// <summary>
    /// The hidden state at <paramref name="point"/> of every layer of <paramref name="model"/>, for each prompt (BOS
    /// first) taken at its last token or averaged over its tokens, then averaged over the prompts: [layer][hidden].
    /// </summary>
    float[][] HiddenStates(string model, IReadOnlyList<string> prompts, ProbePoint point, bool meanOverTokens, CancellationToken ct);

    /// <summary>Token ids of <paramref name="text"/> with BOS first, as the model's tokenizer gives them.</summary>
    int[] Tokenize(string model, string text);
}

/// <summary>What <see cref="MoeBuilder.Build"/> wrote.</summary>
/// <param name="Output">The GGUF file.</param>
/// <param name="Experts">Experts per layer.</param>
/// <param name="Layers">Layers.</param>
/// <param name="Gates">The router weights, [layer][expert][hidden].</param>
/// <param name="DegenerateLayers">Layers whose gate vectors are nearly parallel (some pair with cosine above 0.99): experts there get little traffic, as mergekit warns.</param>
/// <param name="Seconds">Wall time.</param>
public sealed record MoeResult(string Output, int Experts, int Layers, float[][][] Gates, IReadOnlyList<int> DegenerateLayers, double Seconds);

/// <summary>
/// mergekit-moe for llama.cpp: a Mixtral-style mixture of experts from dense LLaMA models of one shape. Attention,
/// norms, embeddings and head come from the base model; each layer's MLP becomes <c>ffn_{gate,up,down}_exps</c> (one
/// slice per expert, from that expert's same layer) with a router <c>ffn_gate_inp</c>; <c>expert_count</c> and
/// <c>expert_used_count</c> are set, so llama.cpp's llama architecture runs it as a MoE. Routers: <c>hidden</c> (the
/// base model's hidden state at each layer's input for the expert's positive prompts, at the last token, minus the
/// negative prompts', normalized), <c>hidden_avg</c> (averaged over tokens), <c>cheap_embed</c> (the prompts' summed
/// token embeddings, every layer alike), <c>random</c> (standard normal) or <c>uniform_random</c> (U(±1/√hidden)).
/// </summary>
public static class MoeBuilder
{
    /// <summary>Builds <paramref name="config"/> into <paramref name="output"/> (.gguf).</summary>
    public static MoeResult Build(MoeConfig config, string output, IHiddenStateSource? states, int seed = 42,
        IProgress<string>? progress = null, CancellationToken ct = default)
    {
        var sw = Stopwatch.StartNew();
        output = Path.GetFullPath(output);
        if (!output.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)) throw new ConfigException($"{output}: the mixture is written as GGUF (llama.cpp's Mixtral-style layout); give a .gguf path");
        var paths = new[] { config.BaseModel }.Concat(config.Experts.Select(e => e.SourceModel)).Distinct().ToList();
        if (paths.Contains(output)) throw new ConsortException($"{output}: the output would overwrite an input");
        GgmlType? outType = config.Dtype is null ? null : SafetensorsDType.ParseUser(config.Dtype);
        var files = new Dictionary<string, GgufFile>();
        try
        {
            foreach (var p in paths)
            {
                if (Directory.Exists(p) || !File.Exists(p)) throw new ModelFileException(p, Directory.Exists(p) ? "is a folder: convert Hugging Face models to GGUF first (consort convert)" : "file not found");
                files[p] = GgufFile.Open(p);
            }
            var b = files[config.BaseModel];
            var arch = b.Architecture ?? "llama";
            int layers = (int)(b.GetInt(arch + ".block_count") ?? 0);
            int hidden = (int)(b.GetInt(arch + ".embedding_length") ?? 0);
            CheckShapes(config, files, arch, layers);

            float[][][] gates = Gates(config, states, layers, hidden, seed, progress, ct);
            var degenerate = Enumerable.Range(0, layers).Where(l => MaxCosine(gates[l]) > 0.99).ToList();

            progress?.Report("writing the mixture");
            using var w = new GgufWriter(output, b.Alignment);
            w.CopyMetadata(b);
            w.SetMetadata("general.name", GgufValue.Of(Path.GetFileNameWithoutExtension(output)));
            w.SetMetadata(arch + ".expert_count", GgufValue.Of((uint)config.Experts.Count));
            w.SetMetadata(arch + ".expert_used_count", GgufValue.Of((uint)config.ExpertsPerToken));
            var plan = new List<(string Name, long[] Dims, GgmlType Type, Action<GgufWriter> Write)>();
            GgmlType TypeOf(GgufTensorInfo t) => t.Dimensions.Length < 2 ? GgmlType.F32 : outType ?? (t.Type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 ? t.Type : GgmlType.F16);
            foreach (var t in b.Tensors)
            {
                bool mlp = TensorNames.LayerIndex(t.Name) is int && (t.Name.EndsWith(".ffn_gate.weight") || t.Name.EndsWith(".ffn_up.weight") || t.Name.EndsWith(".ffn_down.weight"));
                if (!mlp)
                {
                    var type = TypeOf(t);
                    plan.Add((t.Name, t.Dimensions, type, type == t.Type ? g => g.WriteTensorData(t.Name, b.TensorBytes(t)) : g => g.WriteTensor(t.Name, b.ReadFloat32(t))));
                    continue;
                }
                if (!t.Name.EndsWith(".ffn_gate.weight")) continue; // the three go in together, at ffn_gate's place
                int layer = TensorNames.LayerIndex(t.Name)!.Value;
                var gate = gates[layer];
                plan.Add(($"blk.{layer}.ffn_gate_inp.weight", [hidden, config.Experts.Count], GgmlType.F32, g => g.WriteTensor($"blk.{layer}.ffn_gate_inp.weight", gate.SelectMany(x => x).ToArray())));
                foreach (var part in new[] { "ffn_gate", "ffn_down", "ffn_up" })
                {
                    var src = b.FindTensor($"blk.{layer}.{part}.weight")!;
                    var type = TypeOf(src);
                    string name = $"blk.{layer}.{part}_exps.weight";
                    plan.Add((name, [.. src.Dimensions, config.Experts.Count], type, g =>
                    {
                        for (int e = 0; e < config.Experts.Count; e++)
                        {
                            var expert = config.Experts[e];
                            var f = files[expert.SourceModel];
                            var values = f.ReadFloat32(f.FindTensor($"blk.{layer}.{part}.weight")!);
                            if (expert.NoiseScale is double noise) AddNoise(values, noise, seed, name, e);
                            if (part == "ffn_down" && expert.ResidualScale is double rs) System.Numerics.Tensors.TensorPrimitives.Multiply(values, (float)rs, values);
                            var bytes = new byte[GgmlTypes.ByteSize(type, values.Length)];
                            TensorCodec.Encode(type, values, bytes);
                            g.WriteTensorChunk(name, bytes);
                        }
                    }));
                }
            }
            foreach (var p in plan) w.AddTensor(p.Name, p.Dims, p.Type);
            var mostly = plan.GroupBy(p => p.Type).OrderByDescending(g => g.Sum(p => p.Dims.Aggregate(1L, (x, y) => x * y))).First().Key;
            w.SetMetadata("general.file_type", GgufValue.Of((uint)(mostly switch { GgmlType.F16 => 1, GgmlType.BF16 => 32, GgmlType.Q8_0 => 7, _ => 0 })));
            foreach (var p in plan)
            {
                ct.ThrowIfCancellationRequested();
                p.Write(w);
            }
            w.Commit();
            return new MoeResult(output, config.Experts.Count, layers, gates, degenerate, sw.Elapsed.TotalSeconds);
        }
        finally
        {
            foreach (var f in files.Values) f.Dispose();
        }
    }

    private static void CheckShapes(MoeConfig config, Dictionary<string, GgufFile> files, string arch, int layers)
    {
        var b = files[config.BaseModel];
        var problems = new List<string>();
        if (arch != "llama") problems.Add($"{Path.GetFileName(b.Path)} is '{arch}'; Mixtral-style mixtures are built from llama models");
        if (b.GetInt(arch + ".expert_count") is > 0) problems.Add($"{Path.GetFileName(b.Path)} is already a mixture of experts");
        foreach (var e in config.Experts.Select(x => x.SourceModel).Distinct())
        {
            var f = files[e];
            string n = Path.GetFileName(e);
            if (f.Architecture != arch) { problems.Add($"{n} is '{f.Architecture}' but the base is '{arch}'"); continue; }
            if (f.GetInt(arch + ".block_count") != layers) problems.Add($"{n} has {f.GetInt(arch + ".block_count")} layers, the base {layers}");
            foreach (var t in b.Tensors.Where(t => t.Name.Contains(".ffn_")))
                if (f.FindTensor(t.Name) is not { } o) problems.Add($"{n} lacks {t.Name}");
                else if (!o.Dimensions.SequenceEqual(t.Dimensions)) problems.Add($"{t.Name} is {o.ShapeText} in {n} but {t.ShapeText} in the base");
        }
        for (int l = 0; l < layers; l++)
            foreach (var part in new[] { "ffn_gate", "ffn_up", "ffn_down" })
                if (b.FindTensor($"blk.{l}.{part}.weight") is null) problems.Add($"{Path.GetFileName(b.Path)} lacks blk.{l}.{part}.weight");
        if (problems.Count > 0) throw new ModelFileException(b.Path, "cannot build the mixture: " + string.Join("; ", problems.Take(16)));
    }

    private static float[][][] Gates(MoeConfig config, IHiddenStateSource? states, int layers, int hidden, int seed, IProgress<string>? progress, CancellationToken ct)
    {
        int k = config.Experts.Count;
        var g = Enumerable.Range(0, layers).Select(_ => Enumerable.Range(0, k).Select(_ => new float[hidden]).ToArray()).ToArray();
        switch (config.GateMode)
        {
            case "random":
            case "uniform_random":
                var rng = new Random(seed);
                double scale = Math.Sqrt(1.0 / hidden);
                foreach (var layer in g)
                    foreach (var row in layer)
                        for (int j = 0; j < hidden; j++)
                            row[j] = (float)(config.GateMode == "random" ? Gaussian(rng) : (rng.NextDouble() * 2 - 1) * scale);
                return g;
        }
        if (states is null) throw new ConsortException($"gate_mode {config.GateMode} needs hidden states from llama.cpp; no source was given");
        for (int e = 0; e < k; e++)
        {
            ct.ThrowIfCancellationRequested();
            var expert = config.Experts[e];
            progress?.Report($"gate vectors of expert {e + 1}/{k} ({Path.GetFileName(expert.SourceModel)})");
            float[][] Vectors(IReadOnlyList<string> prompts) => config.GateMode == "cheap_embed" ? CheapEmbed(config.BaseModel, prompts, states, layers)
                : states.HiddenStates(config.BaseModel, prompts, ProbePoint.LayerInput, config.GateMode == "hidden_avg", ct);
            var v = Vectors(expert.PositivePrompts);
            if (expert.NegativePrompts.Count > 0)
            {
                var neg = Vectors(expert.NegativePrompts);
                for (int l = 0; l < layers; l++) System.Numerics.Tensors.TensorPrimitives.Subtract(v[l], neg[l], v[l]);
            }
            for (int l = 0; l < layers; l++)
            {
                float n = Math.Max(1e-8f, System.Numerics.Tensors.TensorPrimitives.Norm(v[l]));
                System.Numerics.Tensors.TensorPrimitives.Divide(v[l], n, g[l][e]);
            }
        }
        return g;
    }

    // mergekit's cheap_embed: the prompts' token embeddings summed, normalized, the same for every layer.
    private static float[][] CheapEmbed(string model, IReadOnlyList<string> prompts, IHiddenStateSource states, int layers)
    {
        using var f = GgufFile.Open(model);
        var embd = f.FindTensor("token_embd.weight") ?? throw new ModelFileException(model, "has no token_embd.weight");
        int width = (int)embd.Dimensions[0];
        var all = f.ReadFloat32(embd);
        var sum = new float[width];
        foreach (var p in prompts)
            foreach (var id in states.Tokenize(model, p))
                System.Numerics.Tensors.TensorPrimitives.Add(sum, all.AsSpan(id * width, width), sum);
        return Enumerable.Range(0, layers).Select(_ => (float[])sum.Clone()).ToArray();
    }

    private static double Gaussian(Random r) => Math.Sqrt(-2 * Math.Log(1 - r.NextDouble())) * Math.Cos(2 * Math.PI * r.NextDouble());

    // Seeded per tensor and expert, reproducible.
    private static void AddNoise(float[] values, double scale, int seed, string tensor, int expert)
    {
        var stream = ElementRandom.Stream(seed, tensor, expert);
        for (int j = 0; j < values.Length; j++)
        {
            double u1 = ElementRandom.Uniform(stream, 2L * j), u2 = ElementRandom.Uniform(stream, 2L * j + 1);
            values[j] += (float)(scale * Math.Sqrt(-2 * Math.Log(1 - u1)) * Math.Cos(2 * Math.PI * u2));
        }
    }

    private static double MaxCosine(float[][] rows)
    {
        double max = 0;
        for (int i = 0; i < rows.Length; i++)
            for (int j = i + 1; j < rows.Length; j++)
            {
                double d = VectorMath.Dot(rows[i], rows[j]), n = Math.Sqrt(VectorMath.SumSquares(rows[i]) * VectorMath.SumSquares(rows[j]));
                if (n > 0) max = Math.Max(max, d / n);
            }
        return max;
    }
}
