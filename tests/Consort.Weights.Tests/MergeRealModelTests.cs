using Consort.Formats;
using Consort.Formats.Gguf;
using Consort.Testing;
using Consort.Weights.Config;
using Consort.Weights.Engine;

namespace Consort.Weights.Tests;

/// <summary>Identity properties and refusals on the real shared models, checked through llama.cpp.</summary>
public class MergeRealModelTests
{
    private static void AssertSameTensorBytes(string expected, string actual)
    {
        using var a = GgufFile.Open(expected);
        using var b = GgufFile.Open(actual);
        Assert.Equal(a.Tensors.Select(t => t.Name), b.Tensors.Select(t => t.Name));
        foreach (var t in a.Tensors)
        {
            var u = b.FindTensor(t.Name)!;
            Assert.Equal(t.Type, u.Type);
            Assert.True(a.TensorBytes(t).SequenceEqual(b.TensorBytes(u)), $"{t.Name} differs");
        }
        Assert.Equal(a.Vocabulary, b.Vocabulary);
    }

    [Fact]
    public void LinearMergeOfAModelWithItselfIsBitExact()
    {
        using var dir = new TempDir();
        var yml = dir.File("self.yml");
        File.WriteAllText(yml, $"""
            merge_method: linear
            models:
              - model: {TestPaths.Stories260K}
                parameters:
                  weight: 0.5
              - model: {TestPaths.Stories260K}
                parameters:
                  weight: 0.5
            """);
        var r = MergeEngine.Run(MergeConfig.Load(yml), dir.File("self.gguf"));
        Assert.Equal(48, r.Tensors);
        AssertSameTensorBytes(TestPaths.Stories260K, dir.File("self.gguf"));
        var l1 = LlamaRunner.Logits(TestPaths.Stories260K);
        var l2 = LlamaRunner.Logits(dir.File("self.gguf"));
        Assert.Equal(0f, LlamaRunner.MaxAbsDiff(l1.Logits, l2.Logits));
    }

    [Fact]
    public void TaskArithmeticWithZeroTaskVectorIsBitExact()
    {
        using var dir = new TempDir();
        var copy = dir.File("copy.gguf");
        File.Copy(TestPaths.Stories260K, copy);
        var c = MergeTestModels.Cfg("task_arithmetic", TestPaths.Stories260K, (copy, new() { ["weight"] = 0.7 })).With(("lambda", 2.0));
        MergeEngine.Run(c, dir.File("ta.gguf"));
        AssertSameTensorBytes(TestPaths.Stories260K, dir.File("ta.gguf"));
        var l = LlamaRunner.Logits(dir.File("ta.gguf"));
        Assert.Equal(0f, LlamaRunner.MaxAbsDiff(LlamaRunner.Logits(TestPaths.Stories260K).Logits, l.Logits));
    }

    [Fact]
    public void TiesMergeOfRealModelsRunsInLlamaCpp()
    {
        // Two "fine-tunes" of stories260k: task arithmetic outputs with different small perturbations are not
        // available, so use ExPO extrapolations (real, different weights with the base's shapes) as members.
        using var dir = new TempDir();
        var copy = dir.File("copy.gguf");
        File.Copy(TestPaths.Stories260K, copy);
        var c = MergeTestModels.Cfg("ties", TestPaths.Stories260K, (copy, new() { ["weight"] = 1.0, ["density"] = 0.5 }));
        var r = MergeEngine.Run(c with { OutDtype = "float16" }, dir.File("ties.gguf"));
        Assert.True(r.BytesRead > 0 && r.BytesWritten > 0 && r.PeakMemoryBytes > 0);
        using (var g = GgufFile.Open(dir.File("ties.gguf")))
        {
            Assert.Equal(GgmlType.F16, g.FindTensor("blk.0.attn_q.weight")!.Type);
            Assert.Equal(GgmlType.F32, g.FindTensor("blk.0.attn_norm.weight")!.Type);
            Assert.Equal(1u, (uint)g.GetInt("general.file_type")!);
        }
        var merged = LlamaRunner.Logits(dir.File("ties.gguf"));
        var orig = LlamaRunner.Logits(TestPaths.Stories260K);
        float diff = LlamaRunner.MaxAbsDiff(merged.Logits, orig.Logits);
        Assert.InRange(diff, 1e-6f, 0.1f); // F16 rounding only: the zero task vector leaves the weights
    }

    [Fact]
    public void MismatchedShapesAreRefusedNamingTheFfnTensors()
    {
        using var dir = new TempDir();
        var c = MergeTestModels.Cfg("linear", null, (TestPaths.Stories260K, new() { ["weight"] = 1.0 }), (TestPaths.Llama2Xs, new() { ["weight"] = 1.0 }));
        var e = Assert.Throws<ModelFileException>(() => MergeEngine.Run(c, dir.File("bad.gguf")));
        foreach (var kind in new[] { "ffn_gate", "ffn_up", "ffn_down" })
            Assert.Contains($"blk.0.{kind}.weight", e.Message);
        Assert.Contains("blk.0.ffn_down.weight is [64, 172] in stories260K.gguf but [64, 192] in llama2xs.gguf", e.Message);
        Assert.Contains("[172, 64]", e.Message); // gate/up
        Assert.DoesNotContain("attn_q", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public void DifferentVocabulariesAreRefused()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<ModelFileException>(() => MergeEngine.CheckCompatible([
            new GgufTensorSource(GgufFile.Open(TestPaths.Stories260K)), new GgufTensorSource(GgufFile.Open(TestPaths.TinyStories656K))]));
        Assert.Contains("different vocabulary", e.Message);
    }

    [Fact]
    public void SafetensorsFolderMergeCarriesConfigAndConverts()
    {
        using var dir = new TempDir();
        var hf = TestPaths.Model("tinystories-656k-hf");
        var c = MergeTestModels.Cfg("linear", null, (hf, new() { ["weight"] = 1.0 }), (hf, new() { ["weight"] = 3.0 }));
        MergeEngine.Run(c, dir.File("merged"));
        Assert.True(File.Exists(dir.File("merged/config.json")));
        Assert.True(File.Exists(dir.File("merged/tokenizer.json")));
        using (var a = TensorSources.Open(hf))
        using (var b = TensorSources.Open(dir.File("merged")))
            foreach (var t in a.Tensors) MergeTestModels.Close(a.ReadFloat32(t), b.ReadFloat32(t.Name), 1e-6f);
        Formats.Conversion.ModelConverter.Convert(dir.File("merged"), dir.File("merged.gguf"));
        Assert.Equal(LlamaRunner.Logits(dir.File("merged.gguf")).Tokens, LlamaRunner.Logits(TestPaths.TinyStories656K).Tokens);
    }
}
