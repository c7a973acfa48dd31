using Consort.Formats.Gguf;
using Consort.Testing;
using Consort.Weights.Config;
using Consort.Weights.Engine;

namespace Consort.Weights.Tests;

/// <summary>
/// mergekit's own configs for the methods beyond task arithmetic run unchanged: the shapes mergekit's test suite
/// merges (tests/test_basic_merges.py: two models with weight 0.6 / 0.4, a third as base, each method's parameters
/// as mergekit passes them, including its nuslerp weights that sum to zero) and its examples/arcee_fusion.yml, with
/// the model names as files beside the YAML (the zoo's models: base, arith, facts_a). The outputs are loaded and run
/// by llama.cpp.
/// </summary>
public class MergekitConfigTests : IDisposable
{
    private readonly TempDir _dir = new();

    public MergekitConfigTests()
    {
        var zoo = Path.Combine(TestPaths.RepoRoot, "zoo");
        File.Copy(Path.Combine(zoo, "arith.gguf"), _dir.File("model_a"));
        File.Copy(Path.Combine(zoo, "facts_a.gguf"), _dir.File("model_b"));
        File.Copy(Path.Combine(zoo, "base.gguf"), _dir.File("model_c"));
    }

    public void Dispose() => _dir.Dispose();

    // mergekit's two_model_config: models a and b with weights 0.6 and 0.4, optional base, method parameters.
    private static string TwoModelConfig(string method, string? baseModel, string parameters, string weights = "0.6, 0.4") =>
        $"merge_method: {method}\n" + (baseModel is null ? "" : $"base_model: {baseModel}\n")
        + $"models:\n  - model: model_a\n    parameters:\n      weight: {weights.Split(", ")[0]}\n  - model: model_b\n    parameters:\n      weight: {weights.Split(", ")[1]}\n"
        + (parameters.Length > 0 ? $"parameters:\n{string.Join("", parameters.Split("; ").Select(p => $"  {p}\n"))}" : "")
        + "dtype: bfloat16\n";

    public static TheoryData<string, string> Configs => new()
    {
        { "nuslerp", TwoModelConfig("nuslerp", null, "nuslerp_row_wise: false; nuslerp_flatten: false") },
        { "nuslerp_rows_base", TwoModelConfig("nuslerp", "model_c", "nuslerp_row_wise: true; nuslerp_flatten: false") },
        { "nuslerp_flat_base", TwoModelConfig("nuslerp", "model_c", "nuslerp_row_wise: false; nuslerp_flatten: true") },
        { "nuslerp_zero_sum", TwoModelConfig("nuslerp", "model_c", "nuslerp_row_wise: false; nuslerp_flatten: false", "-0.5, 0.5") },
        { "sce", TwoModelConfig("sce", "model_c", "select_topk: 0.5") },
        { "ram", TwoModelConfig("ram", "model_c", "") },
        { "ramplus_tl", TwoModelConfig("ramplus_tl", "model_c", "r: 0.05; alpha: 1.0") },
        { "multislerp", TwoModelConfig("multislerp", "model_c", "") },
        { "arcee_fusion", TwoModelConfig("arcee_fusion", "model_a", "") },
        { "nearswap", TwoModelConfig("nearswap", "model_a", "t: 0.0001") },
        { "della", TwoModelConfig("della", "model_c", "density: 0.66; epsilon: 0.05; lambda: 0.5") },
        { "della_linear", TwoModelConfig("della_linear", "model_c", "density: 0.66; epsilon: 0.05; lambda: 0.5") },
        { "karcher", TwoModelConfig("karcher", "model_c", "max_iter: 5; tol: 1e-5") },
        // examples/arcee_fusion.yml as mergekit ships it.
        { "example_arcee_fusion", "models:\n  - model: model_a\n  - model: model_b\nmerge_method: arcee_fusion\nbase_model: model_a\ndtype: bfloat16\n" },
    };

    [Theory]
    [MemberData(nameof(Configs))]
    public void RunsUnchangedAndLlamaCppRunsTheOutput(string name, string yaml)
    {
        var yml = _dir.File(name + ".yml");
        File.WriteAllText(yml, yaml);
        var config = MergeConfig.Load(yml);
        var output = _dir.File(name + ".gguf");
        var r = MergeEngine.Run(config, output);
        // Methods without a weight take mergekit's per-model weights as it does: unused (said so, not an error).
        if (name is "sce" or "ram" or "ramplus_tl" or "arcee_fusion" or "nearswap" or "karcher")
            Assert.Contains(r.Warnings, w => w.Contains("does not use parameter 'weight'"));
        using (var g = GgufFile.Open(output))
        {
            Assert.Equal(GgmlType.BF16, g.FindTensor("blk.0.attn_q.weight")!.Type);
            Assert.Equal(GgmlType.F32, g.FindTensor("blk.0.attn_norm.weight")!.Type);
        }
        var (tokens, logits) = LlamaRunner.Logits(output, "Q: 7+48= A:");
        Assert.True(tokens.Length > 5);
        Assert.All(logits, l => { Assert.Equal(258, l.Length); Assert.All(l, x => Assert.True(float.IsFinite(x))); });
    }

    [Fact]
    public void DellaWithAnEpsilonPastTheUnitIntervalFailsLikeMergekit()
    {
        var yml = _dir.File("della_bad.yml");
        File.WriteAllText(yml, TwoModelConfig("della", "model_c", "density: 0.66; epsilon: 1.35; lambda: 0.5"));
        var e = Assert.Throws<ConfigException>(() => MergeEngine.Run(MergeConfig.Load(yml), _dir.File("della_bad.gguf")));
        Assert.Contains("epsilon", e.Message);
    }
}
