using Consort.Formats.Gguf;
using Consort.LlamaCpp;
using Consort.Testing;
using Xunit;

namespace Consort.Tests.LlamaCpp;

/// <summary>LoRA adapters through the factory, with a small adapter written here for stories260K.</summary>
public sealed class LlamaLoraTests
{
    private static void WriteAdapter(string path, int rank = 2)
    {
        var rng = new Random(5);
        using var w = new GgufWriter(path);
        w.SetMetadata("general.architecture", GgufValue.Of("llama"));
        w.SetMetadata("general.type", GgufValue.Of("adapter"));
        w.SetMetadata("adapter.type", GgufValue.Of("lora"));
        w.SetMetadata("adapter.lora.alpha", GgufValue.Of((float)rank));
        // blk.N.attn_q.weight is {64, 64}: lora_a {n_in, r}, lora_b {r, n_out}.
        for (int layer = 0; layer < 2; layer++)
        {
            w.AddTensor($"blk.{layer}.attn_q.weight.lora_a", [64, rank], GgmlType.F32);
            w.AddTensor($"blk.{layer}.attn_q.weight.lora_b", [rank, 64], GgmlType.F32);
        }
        foreach (var t in w.Tensors.ToList())
            w.WriteTensor(t.Name, Enumerable.Range(0, (int)t.ElementCount).Select(_ => (float)(rng.NextDouble() - 0.5) * 0.6f).ToArray());
        w.Commit();
    }

    private static async Task<float[]> Logits(ConsortModel m)
    {
        using var s = await m.Tokens!.StartAsync(m.Tokens.Tokenizer.Encode("Once upon a time, there was", addBos: true));
        return (float[])s.Next.Logits!.Clone();
    }

    [Fact]
    public async Task Adapter_ChangesLogits_AndScaleZeroGivesTheBase()
    {
        using var dir = new TempDir();
        var adapter = dir.File("q.lora.gguf");
        WriteAdapter(adapter);
        using var baseModel = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, ContextSize = 64, MaxSequences = 1 });
        using var on = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, ContextSize = 64, MaxSequences = 1, Adapters = [new(adapter, 1f)] });
        using var off = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, ContextSize = 64, MaxSequences = 1, Adapters = [new(adapter, 0f)] });
        var b = await Logits(baseModel);
        var a1 = await Logits(on);
        var a0 = await Logits(off);
        LlamaTokenModelTests.AssertClose(b, a0, 1e-5f);
        float diff = b.Zip(a1, (x, y) => Math.Abs(x - y)).Max();
        Assert.True(diff > 1e-3f, $"adapter at scale 1 changed logits by only {diff}");
        // The base model loaded alongside is unaffected by the adapter contexts.
        LlamaTokenModelTests.AssertClose(b, await Logits(baseModel), 1e-6f);
    }

    [Fact]
    public void ModelGivenAsAdapter_AndAdapterGivenAsModel_AreModelFileErrors()
    {
        using var dir = new TempDir();
        var adapter = dir.File("q.lora.gguf");
        WriteAdapter(adapter);
        var e1 = Assert.Throws<ModelFileException>(() => LlamaModelFactory.Load(new LlamaModelOptions { Path = adapter }));
        Assert.Contains("LoRA adapter", e1.Message);
        var e2 = Assert.Throws<ModelFileException>(() => LlamaModelFactory.Load(new LlamaModelOptions
            { Path = TestPaths.Stories260K, ContextSize = 64, MaxSequences = 1, Adapters = [new(TestPaths.Llama2Xs, 1f)] }));
        Assert.Contains("not a LoRA adapter", e2.Message);
    }
}
