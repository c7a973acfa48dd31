using System.Text.Json.Nodes;
using Consort.Formats.Gguf;
using Consort.Testing;
using Consort.Weights.Lora;

namespace Consort.Weights.Tests;

/// <summary>LoRA extraction (fine-tune − base by truncated SVD) on the zoo's arith expert, applied by llama.cpp.</summary>
public class LoraExtractionTests : IDisposable
{
    private readonly TempDir _dir = new();
    private static string Zoo(string name) => Path.Combine(TestPaths.RepoRoot, "zoo", name + ".gguf");
    private const string Prompt = "Q: 7+48= A: 55 Q: 3+21= A:";

    public void Dispose() => _dir.Dispose();

    private static double MeanAbsError(float[][] a, float[][] b) =>
        a.Zip(b, (x, y) => x.Zip(y, (p, q) => Math.Abs(p - q)).Average()).Average();

    [Fact]
    public void SvdReconstructsLowRankMatricesAndOrdersSingularValues()
    {
        var r = new Random(3);
        foreach (var (rows, cols) in new[] { (40, 70), (90, 30), (300, 280) })
        {
            // A rank-5 matrix plus small noise: 5 triplets hold nearly everything, the rest is noise.
            var u = Enumerable.Range(0, rows * 5).Select(_ => r.NextDouble() - 0.5).ToArray();
            var v = Enumerable.Range(0, cols * 5).Select(_ => r.NextDouble() - 0.5).ToArray();
            var m = new float[rows * cols];
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < cols; j++)
                {
                    double s = 0;
                    for (int c = 0; c < 5; c++) s += u[i * 5 + c] * v[j * 5 + c] * (10 - c);
                    m[i * cols + j] = (float)(s + (r.NextDouble() - 0.5) * 1e-3);
                }
            var svd = TruncatedSvd.Compute(m, rows, cols, 8, seed: 1);
            Assert.Equal(8, svd.Rank);
            for (int c = 1; c < 8; c++) Assert.True(svd.S[c] <= svd.S[c - 1] * (1 + 1e-9));
            Assert.True(svd.S.Take(5).Sum(s => s * s) > 0.99999 * svd.FrobeniusSquared);
            double err = 0;
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < cols; j++)
                {
                    double s = 0;
                    for (int c = 0; c < 5; c++) s += svd.U[i * 8 + c] * svd.S[c] * svd.V[j * 8 + c];
                    err += (s - m[i * cols + j]) * (s - m[i * cols + j]);
                }
            Assert.True(Math.Sqrt(err / svd.FrobeniusSquared) < 1e-3, $"{rows}x{cols}: relative error {Math.Sqrt(err / svd.FrobeniusSquared)}");
        }
    }

    // The base with the fine-tune's projection matrices and head: what a full-rank adapter can represent (a full
    // fine-tune also moved the embeddings and norms, which no LoRA adapter holds).
    private string Representable()
    {
        var path = _dir.File("representable.gguf");
        using var b = GgufFile.Open(Zoo("base"));
        using var f = GgufFile.Open(Zoo("arith"));
        using var w = new GgufWriter(path);
        w.CopyMetadata(b);
        foreach (var t in b.Tensors) w.AddTensor(t.Name, t.Dimensions, GgmlType.F32);
        foreach (var t in b.Tensors)
            w.WriteTensor(t.Name, t.Dimensions.Length == 2 && t.Name != "token_embd.weight" ? f.ReadFloat32(f.FindTensor(t.Name)!) : b.ReadFloat32(t));
        w.Commit();
        return path;
    }

    [Fact]
    public void ExtractedAdapterApproachesTheFineTuneAsRankGrows()
    {
        var fineTune = LlamaRunner.Logits(Zoo("arith"), Prompt).Logits;
        var representable = LlamaRunner.Logits(Representable(), Prompt).Logits;
        var baseError = MeanAbsError(LlamaRunner.Logits(Zoo("base"), Prompt).Logits, fineTune);
        var toFineTune = new List<double>();
        var toRepresentable = new List<double>();
        foreach (int rank in new[] { 2, 8, 32, 128 })
        {
            var path = _dir.File($"r{rank}.gguf");
            var r = LoraExtractor.Extract(Zoo("arith"), Zoo("base"), [path], new LoraExtractOptions { MaxRank = rank });
            Assert.All(r.Modules, m => Assert.Equal(rank, m.Rank));
            Assert.Contains(r.Unrepresented, u => u.Tensor == "token_embd.weight"); // full fine-tune: embeddings and norms moved too
            var applied = LlamaRunner.Logits(Zoo("base"), Prompt, (path, 1f)).Logits;
            toFineTune.Add(MeanAbsError(applied, fineTune));
            toRepresentable.Add(MeanAbsError(applied, representable));
        }
        string Show(List<double> e) => string.Join(", ", e.Select(x => x.ToString("F4")));
        // Against the fine-tune: falls with rank (until the part no adapter holds dominates) and ends far below the base's error.
        for (int i = 1; i < 3; i++) Assert.True(toFineTune[i] < toFineTune[i - 1], $"error to the fine-tune by rank 2, 8, 32, 128: {Show(toFineTune)}");
        Assert.True(toFineTune[^1] < baseError / 2, $"full rank {toFineTune[^1]:F4} vs the base's {baseError:F4}");
        // Against what an adapter can represent: falls at every rank, to ~0 at full rank (128 = the matrices' shorter side).
        for (int i = 1; i < 4; i++) Assert.True(toRepresentable[i] < toRepresentable[i - 1], $"error to the representable part by rank 2, 8, 32, 128: {Show(toRepresentable)}");
        Assert.True(toRepresentable[^1] < 5e-3, $"full rank: {Show(toRepresentable)}");
    }

    [Fact]
    public void EnergyThresholdPicksRanksAndPeftMatchesTheGgufAdapter()
    {
        var gguf = _dir.File("e.gguf");
        var peft = _dir.File("e-peft");
        var r = LoraExtractor.Extract(Zoo("arith"), Zoo("base"), [gguf, peft], new LoraExtractOptions { MaxRank = 64, Energy = 0.6 });
        Assert.All(r.Modules, m => Assert.True(m.Energy >= 0.6 || m.Rank == 64, $"{m.Target}: rank {m.Rank} keeps {m.Energy:P1}"));
        Assert.True(r.Modules.Select(m => m.Rank).Distinct().Count() > 1, "energy should give different ranks to different matrices");
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(peft, "adapter_config.json")))!;
        Assert.Equal(r.Modules.Max(m => m.Rank), cfg["r"]!.GetValue<int>());
        Assert.True(cfg["rank_pattern"]!.AsObject().Count > 0);
        using (var a = LoraAdapter.Open(peft))
        {
            Assert.Contains(a.Pairs, p => p.Target == "model.layers.0.self_attn.q_proj.weight");
            Assert.All(a.Pairs, p => Assert.Equal(1.0, a.ScaleFor(p), 9)); // alpha_pattern = rank_pattern: scale 1 everywhere
        }
        // The PEFT folder merged into the base (names and q/k rows converted back) equals llama.cpp applying the GGUF adapter.
        LoraMerger.Merge(Zoo("base"), [(peft, 1.0)], _dir.File("merged.gguf"));
        var applied = LlamaRunner.Logits(Zoo("base"), Prompt, (gguf, 1f)).Logits;
        var merged = LlamaRunner.Logits(_dir.File("merged.gguf"), Prompt).Logits;
        Assert.True(LlamaRunner.MaxAbsDiff(applied, merged) < 0.05, $"PEFT merged vs GGUF applied: {LlamaRunner.MaxAbsDiff(applied, merged)}");
        using var adapter = GgufFile.Open(gguf);
        Assert.Equal("adapter", adapter.FileKind);
        Assert.Equal(0.0, adapter.GetFloat("adapter.lora.alpha"));
    }

    [Fact]
    public void BadOptionsAndIdenticalModelsAreClearErrors()
    {
        Assert.Contains("energy 1.5", Assert.Throws<ConfigException>(() => LoraExtractor.Extract(Zoo("arith"), Zoo("base"), [_dir.File("x.gguf")], new LoraExtractOptions { Energy = 1.5 })).Message);
        Assert.Contains("max rank 0", Assert.Throws<ConfigException>(() => LoraExtractor.Extract(Zoo("arith"), Zoo("base"), [_dir.File("x.gguf")], new LoraExtractOptions { MaxRank = 0 })).Message);
        Assert.Contains("does not differ", Assert.Throws<ConsortException>(() => LoraExtractor.Extract(Zoo("base"), Zoo("base"), [_dir.File("x.gguf")], new LoraExtractOptions())).Message);
        Assert.Contains("cannot be compared", Assert.Throws<ModelFileException>(() => LoraExtractor.Extract(TestPaths.Llama2Xs, TestPaths.Stories260K, [_dir.File("x.gguf")], new LoraExtractOptions())).Message);
        Assert.False(File.Exists(_dir.File("x.gguf")));
    }
}
