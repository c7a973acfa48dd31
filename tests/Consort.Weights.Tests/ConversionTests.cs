using Consort.Formats;
using Consort.Formats.Conversion;
using Consort.Formats.Gguf;
using Consort.Formats.Llama2c;
using Consort.Testing;

namespace Consort.Weights.Tests;

public class ConversionTests
{
    private static string HfFolder => TestPaths.Model("tinystories-656k-hf");

    [Fact]
    public void NameMapRoundTrips()
    {
        Assert.Equal("blk.3.ffn_down.weight", TensorNames.HfToGguf("model.layers.3.mlp.down_proj.weight"));
        Assert.Equal("model.layers.3.self_attn.k_proj.weight", TensorNames.GgufToHf("blk.3.attn_k.weight"));
        Assert.Equal("token_embd.weight", TensorNames.HfToGguf("model.embed_tokens.weight"));
        Assert.Null(TensorNames.HfToGguf("model.layers.0.self_attn.rotary_emb.inv_freq"));
        var w = Enumerable.Range(0, 32 * 3).Select(i => (float)i).ToArray();
        var p = TensorNames.PermuteForRope(w, 32, 3, 4);
        Assert.NotEqual(w, p);
        Assert.Equal(w, TensorNames.PermuteForRope(p, 32, 3, 4, inverse: true));
        // Head 0, HF rows 0..7 are [first halves 0-3, second halves 4-7]; llama.cpp interleaves them: 0,4,1,5,...
        Assert.Equal(new float[] { 0, 1, 2, 12, 13, 14, 3, 4, 5 }, p[..9]);
    }

    [Fact]
    public void HfToGgufRunsInLlamaCppAndMatchesQ8Reference()
    {
        using var dir = new TempDir();
        var outPath = dir.File("656k.gguf");
        var r = ModelConverter.Convert(HfFolder, outPath);
        Assert.Equal(outPath, r.Output);
        using (var g = GgufFile.Open(outPath))
        {
            Assert.Equal("llama", g.GetString("tokenizer.ggml.model"));
            using var reference = GgufFile.Open(TestPaths.TinyStories656K);
            Assert.Equal(reference.Vocabulary, g.Vocabulary); // tokenizer built from tokenizer.json equals the reference's
            Assert.Equal(1, g.GetInt("tokenizer.ggml.bos_token_id"));
        }
        var mine = LlamaRunner.Logits(outPath);
        var q8 = LlamaRunner.Logits(TestPaths.TinyStories656K);
        Assert.Equal(q8.Tokens, mine.Tokens);
        float diff = LlamaRunner.MaxAbsDiff(mine.Logits, q8.Logits);
        float scale = q8.Logits.SelectMany(x => x).Max(Math.Abs);
        // Q8_0 quantization error: small against the logit scale, and the predictions agree.
        Assert.True(diff < 0.05f * scale, $"max |diff| {diff} vs logit scale {scale}");
        int agree = mine.Logits.Zip(q8.Logits).Count(p => LlamaRunner.ArgMax(p.First) == LlamaRunner.ArgMax(p.Second));
        Assert.True(agree >= mine.Logits.Length - 1, $"argmax agreed at {agree} of {mine.Logits.Length} positions");
    }

    [Fact]
    public void GgufToHfAndBackIsExact()
    {
        using var dir = new TempDir();
        ModelConverter.Convert(TestPaths.Stories260K, dir.File("hf"), new ConvertOptions());
        Assert.True(File.Exists(dir.File("hf/config.json")));
        ModelConverter.Convert(dir.File("hf"), dir.File("back.gguf"), new ConvertOptions { TokenizerFrom = TestPaths.Stories260K });
        using var a = new GgufTensorSource(GgufFile.Open(TestPaths.Stories260K));
        using var b = new GgufTensorSource(GgufFile.Open(dir.File("back.gguf")));
        foreach (var t in a.Tensors) Assert.Equal(a.ReadFloat32(t), b.ReadFloat32(t.Name));
        var l1 = LlamaRunner.Logits(TestPaths.Stories260K);
        var l2 = LlamaRunner.Logits(dir.File("back.gguf"));
        Assert.True(LlamaRunner.MaxAbsDiff(l1.Logits, l2.Logits) < 1e-3f);
    }

    [Fact]
    public void Llama2cCheckpointEqualsItsGguf()
    {
        using var ck = Llama2cCheckpoint.Open(TestPaths.Model("stories260k/stories260K.bin"));
        Assert.Equal(64, ck.Config.Dim);
        Assert.Equal(172, ck.Config.HiddenDim);
        using var g = new GgufTensorSource(GgufFile.Open(TestPaths.Stories260K));
        foreach (var t in ck.Tensors)
        {
            var gt = g.Find(t.Name)!;
            Assert.True(t.SameShape(gt), t.Name);
            Assert.Equal(g.ReadFloat32(gt), ck.ReadFloat32(t));
        }
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("cut.bin"), File.ReadAllBytes(TestPaths.Model("stories260k/stories260K.bin"))[..5000]);
        Assert.Contains("truncated", Assert.Throws<ModelFileException>(() => Llama2cCheckpoint.Open(dir.File("cut.bin"))).Message);
    }
}
