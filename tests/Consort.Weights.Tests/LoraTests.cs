using Consort.Formats;
using Consort.Formats.Gguf;
using Consort.Formats.Safetensors;
using Consort.Testing;
using Consort.Weights.Lora;

namespace Consort.Weights.Tests;

/// <summary>LoRA read/write/merge against llama.cpp applying the same adapters at load time.</summary>
public class LoraTests
{
    private static readonly string[] Targets = ["attn_q", "attn_k", "attn_v", "ffn_up", "ffn_down"];

    /// <summary>A random rank-4 adapter for every layer's <see cref="Targets"/> of stories260k.</summary>
    private static List<LoraUpdate> RandomUpdates(int seed)
    {
        var r = new Random(seed);
        using var g = GgufFile.Open(TestPaths.Stories260K);
        var list = new List<LoraUpdate>();
        for (int l = 0; l < 5; l++)
            foreach (var t in Targets)
            {
                var info = g.FindTensor($"blk.{l}.{t}.weight")!;
                int inW = (int)info.Dimensions[0], outW = (int)info.Dimensions[1], rank = 4;
                float[] Rand(int n, float s) => Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1) * s).ToArray();
                list.Add(new LoraUpdate($"blk.{l}.{t}.weight", Rand(rank * inW, 0.1f), Rand(outW * rank, 0.1f), rank, inW, outW));
            }
        return list;
    }

    [Fact]
    public void MergedAdapterMatchesLlamaCppApplyingIt()
    {
        using var dir = new TempDir();
        var adapter = dir.File("a.gguf");
        LoraWriter.WriteGguf(adapter, RandomUpdates(1), alpha: 8);
        using (var a = LoraAdapter.Open(adapter))
        {
            Assert.Equal(25, a.Pairs.Count);
            Assert.Equal(2.0, a.ScaleFor(a.Pairs[0])); // alpha 8 / r 4
        }
        LoraMerger.Merge(TestPaths.Stories260K, [(adapter, 1.0)], dir.File("merged.gguf"));
        var applied = LlamaRunner.Logits(TestPaths.Stories260K, adapters: (adapter, 1f));
        var merged = LlamaRunner.Logits(dir.File("merged.gguf"));
        var plain = LlamaRunner.Logits(TestPaths.Stories260K);
        float effect = LlamaRunner.MaxAbsDiff(applied.Logits, plain.Logits);
        Assert.True(effect > 0.05f, $"the adapter should change the output (max change {effect})");
        Console.WriteLine($"LoRA effect {effect}");
        float diff = LlamaRunner.MaxAbsDiff(applied.Logits, merged.Logits);
        Assert.True(diff < 1e-4f, $"merged vs applied by llama.cpp: max |diff| {diff} (effect {effect})");
    }

    [Fact]
    public void LoraHubCombinationEqualsSeveralAdaptersWithScales()
    {
        using var dir = new TempDir();
        LoraWriter.WriteGguf(dir.File("a.gguf"), RandomUpdates(1), alpha: 4);
        LoraWriter.WriteGguf(dir.File("b.gguf"), RandomUpdates(2), alpha: 4);
        LoraMerger.Merge(TestPaths.Stories260K, [(dir.File("a.gguf"), 0.7), (dir.File("b.gguf"), -0.4)], dir.File("hub.gguf"));
        var applied = LlamaRunner.Logits(TestPaths.Stories260K, adapters: [(dir.File("a.gguf"), 0.7f), (dir.File("b.gguf"), -0.4f)]);
        var merged = LlamaRunner.Logits(dir.File("hub.gguf"));
        float diff = LlamaRunner.MaxAbsDiff(applied.Logits, merged.Logits);
        Assert.True(diff < 1e-4f, $"LoraHub merge vs llama.cpp with two adapters: max |diff| {diff}");
    }

    [Fact]
    public void PeftAdapterMergesAndConvertsLikeItsGgufTwin()
    {
        using var dir = new TempDir();
        var updates = RandomUpdates(3);
        LoraWriter.WriteGguf(dir.File("twin.gguf"), updates, alpha: 16);
        // The same adapter in PEFT form: HF names, B rows of q/k in HF rope layout.
        var peft = dir.File("peft");
        Directory.CreateDirectory(peft);
        using (var w = new SafetensorsWriter(Path.Combine(peft, "adapter_model.safetensors")))
        {
            var items = updates.Select(u =>
            {
                var hf = TensorNames.GgufToHf(u.Target)![..^".weight".Length];
                var b = u.Target.EndsWith("attn_q.weight") || u.Target.EndsWith("attn_k.weight")
                    ? TensorNames.PermuteForRope(u.B, u.Out, u.Rank, u.Target.EndsWith("attn_q.weight") ? 8 : 4, inverse: true) : u.B;
                return (Name: "base_model.model." + hf, U: u, B: b);
            }).ToList();
            foreach (var (n, u, _) in items)
            {
                w.AddTensor(n + ".lora_A.weight", [u.Rank, u.In], GgmlType.F32);
                w.AddTensor(n + ".lora_B.weight", [u.Out, u.Rank], GgmlType.F32);
            }
            foreach (var (n, u, b) in items)
            {
                w.WriteTensor(n + ".lora_A.weight", u.A);
                w.WriteTensor(n + ".lora_B.weight", b);
            }
            w.Commit();
        }
        File.WriteAllText(Path.Combine(peft, "adapter_config.json"), """{"peft_type": "LORA", "r": 4, "lora_alpha": 16, "target_modules": ["q_proj", "k_proj", "v_proj", "up_proj", "down_proj"]}""");

        LoraMerger.Merge(TestPaths.Stories260K, [(dir.File("twin.gguf"), 1.0)], dir.File("m1.gguf"));
        LoraMerger.Merge(TestPaths.Stories260K, [(peft, 1.0)], dir.File("m2.gguf"));
        using (var a = new GgufTensorSource(GgufFile.Open(dir.File("m1.gguf"))))
        using (var b = new GgufTensorSource(GgufFile.Open(dir.File("m2.gguf"))))
            foreach (var t in a.Tensors) Assert.Equal(a.ReadFloat32(t), b.ReadFloat32(t.Name));

        LoraWriter.PeftToGguf(peft, TestPaths.Stories260K, dir.File("converted.gguf"));
        var viaConverted = LlamaRunner.Logits(TestPaths.Stories260K, adapters: (dir.File("converted.gguf"), 1f));
        var viaTwin = LlamaRunner.Logits(TestPaths.Stories260K, adapters: (dir.File("twin.gguf"), 1f));
        Assert.Equal(0f, LlamaRunner.MaxAbsDiff(viaConverted.Logits, viaTwin.Logits));
    }

    [Fact]
    public void BadAdaptersAreClearErrors()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<ModelFileException>(() => LoraAdapter.Open(TestPaths.Stories260K));
        Assert.Contains("not a LoRA adapter", e.Message);
        // An adapter for llama2xs's wider FFN does not fit stories260k.
        using var g = GgufFile.Open(TestPaths.Llama2Xs);
        var up = g.FindTensor("blk.0.ffn_up.weight")!;
        int inW = (int)up.Dimensions[0], outW = (int)up.Dimensions[1];
        LoraWriter.WriteGguf(dir.File("wide.gguf"), [new LoraUpdate("blk.0.ffn_up.weight", new float[2 * inW], new float[outW * 2], 2, inW, outW)], 2);
        var m = Assert.Throws<ModelFileException>(() => LoraMerger.Merge(TestPaths.Stories260K, [(dir.File("wide.gguf"), 1.0)], dir.File("x.gguf")));
        Assert.Contains("blk.0.ffn_up.weight", m.Message);
        Assert.Contains("[192, 64]", m.Message);
        Assert.False(File.Exists(dir.File("x.gguf")));
    }
}
