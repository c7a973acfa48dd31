using System.Text.Json.Nodes;
using Consort.Formats;
using Consort.Formats.Gguf;
using Consort.Testing;
using Consort.Weights.Config;
using Consort.Weights.Engine;

namespace Consort.Weights.Tests;

/// <summary>
/// Output format by path in both directions, mergekit's options (out_shard_size, random_seed, allow_crimes,
/// lazy_unpickle), range checks of every parameter before work, and the model-reference hook.
/// </summary>
public class MergeOptionsTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private string Yaml(string name, string body)
    {
        var path = _dir.File(name + ".yml");
        File.WriteAllText(path, body);
        return path;
    }

    [Fact]
    public void GgufInputsMergeIntoASafetensorsFolderThatConvertsBackExactly()
    {
        var c = MergeTestModels.Cfg("linear", null, (TestPaths.Stories260K, new() { ["weight"] = 1.0 }), (TestPaths.Stories260K, new() { ["weight"] = 1.0 }));
        MergeEngine.Run(c, _dir.File("hf"));
        var cfg = JsonNode.Parse(File.ReadAllText(_dir.File("hf/config.json")))!;
        Assert.Equal(5, cfg["num_hidden_layers"]!.GetValue<int>());
        Assert.Equal(512, cfg["vocab_size"]!.GetValue<int>());
        Assert.False(cfg["tie_word_embeddings"]!.GetValue<bool>());
        using (var st = TensorSources.Open(_dir.File("hf")))
        {
            Assert.NotNull(st.Find("model.layers.0.self_attn.q_proj.weight"));
            Assert.NotNull(st.Find("lm_head.weight"));
            Assert.Null(st.Find("blk.0.attn_q.weight"));
        }
        // Back to GGUF (with stories260K's tokenizer): the q/k rows return to llama.cpp's order, logits are identical.
        Formats.Conversion.ModelConverter.Convert(_dir.File("hf"), _dir.File("back.gguf"), new() { TokenizerFrom = TestPaths.Stories260K });
        Assert.Equal(0f, LlamaRunner.MaxAbsDiff(LlamaRunner.Logits(TestPaths.Stories260K).Logits, LlamaRunner.Logits(_dir.File("back.gguf")).Logits));
    }

    [Fact]
    public void SafetensorsInputsMergeIntoAGgufLikeTheConverterWrites()
    {
        var hf = TestPaths.Model("tinystories-656k-hf");
        var c = MergeTestModels.Cfg("linear", null, (hf, new() { ["weight"] = 1.0 }), (hf, new() { ["weight"] = 1.0 }));
        MergeEngine.Run(c, _dir.File("merged.gguf"));
        Formats.Conversion.ModelConverter.Convert(hf, _dir.File("converted.gguf"));
        using (var a = GgufFile.Open(_dir.File("converted.gguf")))
        using (var b = GgufFile.Open(_dir.File("merged.gguf")))
        {
            Assert.Equal(a.Tensors.Select(t => t.Name).Order(), b.Tensors.Select(t => t.Name).Order());
            foreach (var t in a.Tensors) Assert.Equal(a.ReadFloat32(t), b.ReadFloat32(b.FindTensor(t.Name)!));
            Assert.Equal(a.Vocabulary, b.Vocabulary);
            Assert.Equal(a.GetInt("llama.block_count"), b.GetInt("llama.block_count"));
        }
        var merged = LlamaRunner.Logits(_dir.File("merged.gguf"));
        Assert.Equal(LlamaRunner.Logits(TestPaths.TinyStories656K).Tokens, merged.Tokens);
        Assert.Equal(0f, LlamaRunner.MaxAbsDiff(LlamaRunner.Logits(_dir.File("converted.gguf")).Logits, merged.Logits));
    }

    [Fact]
    public void OutShardSizeSplitsTheFolderAndTheShardsReadBackAsOneModel()
    {
        var hf = TestPaths.Model("tinystories-656k-hf");
        var yml = Yaml("shard", $"merge_method: linear\nmodels:\n  - model: {hf}\n    parameters: {{weight: 1.0}}\nout_shard_size: 1M\nlazy_unpickle: true\nrandom_seed: 3\n");
        var c = MergeConfig.Load(yml);
        Assert.Equal(1_000_000, c.OutShardSize);
        Assert.True(c.LazyUnpickle);
        Assert.Equal(3, c.Seed);
        MergeEngine.Run(c, _dir.File("sharded"));
        var shards = Directory.GetFiles(_dir.File("sharded"), "model-*-of-*.safetensors");
        Assert.True(shards.Length >= 2, $"{shards.Length} shards");
        Assert.All(shards, f => Assert.True(new FileInfo(f).Length < 1_000_000 + 200_000));
        Assert.False(File.Exists(_dir.File("sharded/model.safetensors")));
        using (var a = TensorSources.Open(hf))
        using (var b = TensorSources.Open(_dir.File("sharded")))
            foreach (var t in a.Tensors) Assert.Equal(a.ReadFloat32(t), b.ReadFloat32(t.Name));
        Assert.Contains("1.5 is not a size", Assert.Throws<ConfigException>(() => MergeConfig.ParseSize("1.5", "out_shard_size")).Message.Replace("'", ""));
        Assert.Equal(5_000_000_000, MergeConfig.ParseSize("5B", "x"));
        var gguf = Assert.Throws<ConsortException>(() => MergeEngine.Run(c, _dir.File("one.gguf")));
        Assert.Contains("a .gguf output is one file", gguf.Message);
    }

    [Fact]
    public void MixedArchitecturesNeedAllowCrimes()
    {
        var hf = TestPaths.Model("tinystories-656k-hf");
        var other = _dir.File("mistral");
        Directory.CreateDirectory(other);
        foreach (var f in Directory.GetFiles(hf)) File.Copy(f, Path.Combine(other, Path.GetFileName(f)));
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(other, "config.json")))!.AsObject();
        cfg["architectures"] = new JsonArray("MistralForCausalLM");
        File.WriteAllText(Path.Combine(other, "config.json"), cfg.ToJsonString());
        var c = MergeTestModels.Cfg("linear", null, (hf, new() { ["weight"] = 1.0 }), (other, new() { ["weight"] = 1.0 }));
        var e = Assert.Throws<ConfigException>(() => MergeEngine.Run(c, _dir.File("crime")));
        Assert.Contains("MistralForCausalLM", e.Message);
        Assert.Contains("allow_crimes", e.Message);
        MergeEngine.Run(c with { AllowCrimes = true }, _dir.File("crime"));
        Assert.True(File.Exists(_dir.File("crime/model.safetensors")));
    }

    [Theory]
    [InlineData("ties", "density: 1.5", "parameter 'density' is 1.5; it must be a finite number in [0, 1]")]
    [InlineData("ties", "density: 1e26", "parameter 'density' is 1E+26")]
    [InlineData("ties", "density: [0.5, 2.0]", "parameter 'density' is 2; it must be a finite number in [0, 1]")]
    [InlineData("ties", "density: [{filter: mlp, value: -0.1}, {value: 0.5}]", "parameter 'density' is -0.1")]
    [InlineData("multislerp", "weight: -1", "parameter 'weight' is -1; it must be a finite number >= 0")]
    [InlineData("della", "density: 0.5\n      epsilon: 1.0", "parameter 'epsilon' is 1; it must be a finite number in [0, 1)")]
    public void OutOfRangeModelParametersAreRefusedBeforeWork(string method, string parameters, string message)
    {
        var yml = Yaml("bad", $"merge_method: {method}\nbase_model: {TestPaths.Stories260K}\nmodels:\n  - model: {TestPaths.Llama2Xs}\n    parameters:\n      weight: 1.0\n      {parameters}\n  - model: {TestPaths.Stories260K}\n    parameters:\n      weight: 1.0\n");
        if (method == "multislerp") File.WriteAllText(yml, File.ReadAllText(yml).Replace($"base_model: {TestPaths.Stories260K}\n", "").Replace("weight: 1.0\n      weight: -1", "weight: -1"));
        var e = Assert.Throws<ConfigException>(() => MergeEngine.Run(MergeConfig.Load(yml), _dir.File("never.gguf")));
        Assert.Contains(message, e.Message);
        Assert.Contains("llama2xs.gguf", e.Message); // names the model (llama2xs's shapes differ: the check ran before any file was compared)
        Assert.False(File.Exists(_dir.File("never.gguf")));
    }

    [Theory]
    [InlineData("ties", "normalize: 1e308", "parameter 'normalize' is 1E+308; it must be true or false")]
    [InlineData("ties", "lambda: 1e400", "parameter 'lambda' is Infinity; it must be a finite number")]
    [InlineData("slerp", "t: 2", "parameter 't' is 2; it must be a finite number in [0, 1]")]
    [InlineData("karcher", "max_iter: 2.5", "parameter 'max_iter' is 2.5; it must be a whole number in [1, 10000]")]
    [InlineData("sce", "select_topk: -1", "parameter 'select_topk' is -1")]
    [InlineData("nearswap", "t: -0.5", "parameter 't' is -0.5; it must be a finite number >= 0")]
    [InlineData("ramplus_tl", "alpha: NaN", "parameter 'alpha' is NaN")]
    public void OutOfRangeGlobalParametersAreRefusedBeforeWork(string method, string parameter, string message)
    {
        string models = method is "karcher" ? $"  - model: {TestPaths.Llama2Xs}\n" : method is "ties" ? $"  - model: {TestPaths.Llama2Xs}\n    parameters: {{weight: 1.0}}\n" : $"  - model: {TestPaths.Llama2Xs}\n";
        var yml = Yaml("badg", $"merge_method: {method}\nbase_model: {TestPaths.Stories260K}\nmodels:\n{models}parameters:\n  {parameter}\n");
        var e = Assert.Throws<ConfigException>(() => MergeEngine.Validate(MergeConfig.Load(yml)));
        Assert.Contains(message, e.Message);
        Assert.Contains($"merge_method '{method}'", e.Message);
    }

    [Fact]
    public void MissingRequiredParametersAreNamed()
    {
        var yml = Yaml("noweight", $"merge_method: ties\nbase_model: {TestPaths.Stories260K}\nmodels:\n  - model: {TestPaths.Llama2Xs}\n");
        Assert.Contains("model 'llama2xs.gguf' needs parameter 'weight'", Assert.Throws<ConfigException>(() => MergeEngine.Validate(MergeConfig.Load(yml))).Message);
        var not = Yaml("not", $"merge_method: nearswap\nbase_model: {TestPaths.Stories260K}\nmodels:\n  - model: {TestPaths.Llama2Xs}\n");
        Assert.Contains("needs parameter 't'", Assert.Throws<ConfigException>(() => MergeEngine.Validate(MergeConfig.Load(not))).Message);
    }

    [Fact]
    public void ModelReferencesGoThroughTheResolverHook()
    {
        var yml = Yaml("refs", "merge_method: task_arithmetic\nbase_model: zoo:base\nmodels:\n  - model: zoo:arith\n    parameters: {weight: 1.0}\n  - model: hf:owner/repo/model-Q8_0.gguf\n    parameters: {weight: 0.5}\n");
        var asked = new List<string>();
        string Resolve(string r) { asked.Add(r); return r.StartsWith("zoo:") ? Path.Combine(TestPaths.RepoRoot, "zoo", r[4..] + ".gguf") : TestPaths.Stories260K; }
        var c = MergeConfig.Load(yml, Resolve);
        Assert.Equal(["zoo:base", "zoo:arith", "hf:owner/repo/model-Q8_0.gguf"], asked);
        Assert.Equal(Path.Combine(TestPaths.RepoRoot, "zoo", "base.gguf"), c.BaseModel);
        Assert.Equal("zoo:arith", c.Models[0].Reference);
        Assert.Equal(TestPaths.Stories260K, c.Models[1].Path);
        Assert.NotNull(c.ResolveReference); // kept for configs derived from this one
        // Without a resolver a reference is a clear error, not a file under the YAML's folder; paths still work.
        var e = Assert.Throws<ConfigException>(() => MergeConfig.Load(yml));
        Assert.Contains("'zoo:base' is a model reference", e.Message);
        Assert.False(MergeConfig.IsReference("/abs/path.gguf"));
        Assert.False(MergeConfig.IsReference("C:\\models\\a.gguf"));
        Assert.True(MergeConfig.IsReference("zoo:arith"));
        // The static default is used when no resolver is passed.
        MergeConfig.DefaultResolveReference = Resolve;
        try { Assert.Equal(c.BaseModel, MergeConfig.Load(yml).BaseModel); }
        finally { MergeConfig.DefaultResolveReference = null; }
    }
}
