using Consort.Formats;
using Consort.Formats.Gguf;
using Consort.Formats.Safetensors;
using Consort.Testing;
using Consort.Weights.Config;
using Consort.Weights.Engine;

namespace Consort.Weights.Tests;

/// <summary>mergekit <c>slices:</c> configs: layer-range merges and passthrough "frankenmerges".</summary>
public sealed class SliceTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly string _a, _b;
    private const int Layers = 4;

    public SliceTests()
    {
        _a = Write("a", 1);
        _b = Write("b", 2);
    }

    public void Dispose() => _dir.Dispose();

    // A uniform 4-layer model: every layer has the same two matrices (as real models do).
    private string Write(string name, int seed)
    {
        var folder = _dir.File(name);
        Directory.CreateDirectory(folder);
        var tensors = new List<(string Name, long[] Shape)> { ("model.embed_tokens.weight", [20, 16]) };
        for (int l = 0; l < Layers; l++)
        {
            tensors.Add(($"model.layers.{l}.self_attn.q_proj.weight", [8, 16]));
            tensors.Add(($"model.layers.{l}.mlp.down_proj.weight", [16, 12]));
        }
        tensors.Add(("model.norm.weight", [16]));
        using var w = new SafetensorsWriter(Path.Combine(folder, "model.safetensors"));
        foreach (var (n, s) in tensors) w.AddTensor(n, s, GgmlType.F32);
        int i = 0;
        foreach (var (n, s) in tensors) w.WriteTensor(n, MergeTestModels.Random(seed * 100 + i++, (int)s.Aggregate(1L, (x, y) => x * y)));
        w.Commit();
        File.WriteAllText(Path.Combine(folder, "config.json"), "{\"model_type\": \"llama\", \"num_hidden_layers\": 4}");
        return folder;
    }

    private string Yaml(string text)
    {
        var path = _dir.File(Guid.NewGuid().ToString("N") + ".yml");
        File.WriteAllText(path, text);
        return path;
    }

    private static byte[] Bytes(string model, string tensor)
    {
        using var m = TensorSources.Open(model);
        var t = m.Find(tensor) ?? throw new KeyNotFoundException(tensor);
        return m.GetBytes(t, 0, (int)t.ByteSize).ToArray();
    }

    [Fact]
    public void SlerpOverOneFullSliceEqualsTheWholeModelMerge()
    {
        var sliced = MergeConfig.Load(Yaml($"""
            slices:
              - sources:
                  - model: {_a}
                    layer_range: [0, {Layers}]
                  - model: {_b}
                    layer_range: [0, {Layers}]
            merge_method: slerp
            base_model: {_a}
            parameters:
              t: [0, 0.5, 1]
            """));
        var whole = MergeConfig.Load(Yaml($"""
            models:
              - model: {_a}
              - model: {_b}
            merge_method: slerp
            base_model: {_a}
            parameters:
              t: [0, 0.5, 1]
            """));
        MergeEngine.Run(sliced, _dir.File("sliced"));
        MergeEngine.Run(whole, _dir.File("whole"));
        Assert.Equal(File.ReadAllBytes(Path.Combine(_dir.File("whole"), "model.safetensors")), File.ReadAllBytes(Path.Combine(_dir.File("sliced"), "model.safetensors")));
    }

    [Fact]
    public void GradientsRunOverEachSliceAndGlobalsComeFromTheFirstAndLastSlices()
    {
        // Two slices of two layers; t goes 0 -> 1 within each slice, so each slice's first layer is the base's.
        var c = MergeConfig.Load(Yaml($"""
            slices:
              - sources:
                  - model: {_a}
                    layer_range: [0, 2]
                  - model: {_b}
                    layer_range: [0, 2]
              - sources:
                  - model: {_b}
                    layer_range: [2, 4]
                  - model: {_a}
                    layer_range: [2, 4]
            merge_method: slerp
            base_model: {_a}
            parameters:
              t: [0, 1]
            """));
        var o = MergeTestModels.Run(c, _dir.File("out"));
        foreach (var m in new[] { "self_attn.q_proj", "mlp.down_proj" })
        {
            Assert.Equal(MergeTestModels.Read(_a, $"model.layers.0.{m}.weight"), o[$"model.layers.0.{m}.weight"]); // t = 0: base
            MergeTestModels.Close(MergeTestModels.Read(_b, $"model.layers.1.{m}.weight"), o[$"model.layers.1.{m}.weight"]); // t = 1: the other
            Assert.Equal(MergeTestModels.Read(_a, $"model.layers.2.{m}.weight"), o[$"model.layers.2.{m}.weight"]); // slice 2 starts again at t = 0
            MergeTestModels.Close(MergeTestModels.Read(_b, $"model.layers.3.{m}.weight"), o[$"model.layers.3.{m}.weight"]);
        }
        Assert.Equal(MergeTestModels.Read(_a, "model.embed_tokens.weight"), o["model.embed_tokens.weight"]); // first anchor
        MergeTestModels.Close(MergeTestModels.Read(_b, "model.norm.weight"), o["model.norm.weight"]);         // last anchor
    }

    [Fact]
    public void PassthroughStacksLayerRangesAndRecordsTheNewDepth()
    {
        var c = MergeConfig.Load(Yaml($"""
            slices:
              - sources:
                  - model: {_a}
                    layer_range: [0, 3]
              - sources:
                  - model: {_b}
                    layer_range: [1, 4]
            merge_method: passthrough
            dtype: float32
            """));
        var r = MergeEngine.Run(c, _dir.File("franken"));
        Assert.Equal(2 + 6 * 2, r.Tensors);
        for (int l = 0; l < 6; l++)
        {
            var (src, from) = l < 3 ? (_a, l) : (_b, l - 2);
            Assert.Equal(Bytes(src, $"model.layers.{from}.mlp.down_proj.weight"), Bytes(_dir.File("franken"), $"model.layers.{l}.mlp.down_proj.weight"));
        }
        Assert.Equal(Bytes(_a, "model.embed_tokens.weight"), Bytes(_dir.File("franken"), "model.embed_tokens.weight"));
        Assert.Equal(Bytes(_b, "model.norm.weight"), Bytes(_dir.File("franken"), "model.norm.weight"));
        Assert.Contains("\"num_hidden_layers\": 6", File.ReadAllText(Path.Combine(_dir.File("franken"), "config.json")));
    }

    [Fact]
    public void AGgufFrankenmergeRunsInLlamaCpp()
    {
        // stories260K has 5 layers: layers 0-2, then 1-4 again, make a 7-layer model.
        var c = MergeConfig.Load(Yaml($"""
            slices:
              - sources:
                  - model: {TestPaths.Stories260K}
                    layer_range: [0, 3]
              - sources:
                  - model: {TestPaths.Stories260K}
                    layer_range: [1, 5]
            merge_method: passthrough
            """));
        var output = _dir.File("franken.gguf");
        MergeEngine.Run(c, output);
        using (var g = GgufFile.Open(output))
        {
            Assert.Equal(7u, Convert.ToUInt32(g.Get("llama.block_count")!.Value));
            Assert.Equal(3 + 7 * 9, g.Tensors.Count);
        }
        Assert.Equal(Bytes(TestPaths.Stories260K, "blk.1.attn_q.weight"), Bytes(output, "blk.3.attn_q.weight"));
        var (tokens, logits) = LlamaRunner.Logits(output);
        Assert.NotEmpty(tokens);
        Assert.All(logits, row => Assert.All(row, x => Assert.True(float.IsFinite(x))));
        // A different network from the original: its logits differ.
        Assert.True(LlamaRunner.MaxAbsDiff(LlamaRunner.Logits(TestPaths.Stories260K).Logits, logits) > 1e-3f);
    }

    [Theory]
    [InlineData("models:\n  - model: A\nslices:\n  - sources:\n      - model: A\n        layer_range: [0, 2]", "either 'models' or 'slices'")]
    [InlineData("slices:\n  - sources:\n      - model: A\n        layer_range: [0, 2]\n      - model: B\n        layer_range: [0, 3]", "same number of layers")]
    [InlineData("slices:\n  - sources:\n      - model: A\n        layer_range: [2, 2]", "layer_range")]
    [InlineData("slices:\n  - sources:\n      - model: A\n        layers: [0, 2]", "unknown key 'layers'")]
    [InlineData("slices: []", "non-empty")]
    public void BadSlicesAreClearErrors(string body, string expected)
    {
        var yml = Yaml("merge_method: passthrough\n" + body.Replace("model: A", $"model: {_a}").Replace("model: B", $"model: {_b}"));
        var e = Assert.Throws<ConfigException>(() => MergeConfig.Load(yml));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void RangesPastAModelsLayersAndAMissingBaseAreRefusedBeforeWork()
    {
        var past = MergeConfig.Load(Yaml($"slices:\n  - sources:\n      - model: {_a}\n        layer_range: [2, 6]\nmerge_method: passthrough\n"));
        var e = Assert.Throws<ConfigException>(() => MergeEngine.Run(past, _dir.File("past")));
        Assert.Contains("has 4 layers", e.Message);
        var noBase = MergeConfig.Load(Yaml($"slices:\n  - sources:\n      - model: {_b}\n        layer_range: [0, 4]\nmerge_method: task_arithmetic\nbase_model: {_a}\n"));
        e = Assert.Throws<ConfigException>(() => MergeEngine.Run(noBase, _dir.File("nobase")));
        Assert.Contains("base_model", e.Message);
        Assert.False(Directory.Exists(_dir.File("past")) && Directory.EnumerateFiles(_dir.File("past")).Any());
    }
}
