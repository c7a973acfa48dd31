using Consort.Testing;
using Consort.Weights.Config;
using Consort.Weights.Engine;
using Consort.Weights.Methods;

namespace Consort.Weights.Tests;

public class ExampleConfigTests
{
    [Fact]
    public void EveryMethodHasAValidExampleConfig()
    {
        var folder = Path.Combine(TestPaths.RepoRoot, "examples", "merge");
        // moe.yml and evolve.yml are the configs of merge-moe and merge-evolve (tested with those commands).
        var files = Directory.GetFiles(folder, "*.yml").Where(f => Path.GetFileNameWithoutExtension(f) is not ("moe" or "evolve")).ToList();
        foreach (var method in MergeMethodRegistry.Names)
            Assert.Contains(files, f => Path.GetFileNameWithoutExtension(f) == method);
        foreach (var f in files)
        {
            var c = MergeConfig.Load(f);
            Assert.Equal(Path.GetFileNameWithoutExtension(f), c.MergeMethod);
            MergeEngine.Validate(c);
            Assert.All(c.AllPaths, p => Assert.True(Path.IsPathRooted(p)));
        }
    }

    /// <summary>The examples whose inputs are the committed zoo (every method added with mergekit parity).</summary>
    public static TheoryData<string> ZooExamples => new(Directory.GetFiles(Path.Combine(TestPaths.RepoRoot, "examples", "merge"), "*.yml")
        .Where(f => Path.GetFileNameWithoutExtension(f) is not ("moe" or "evolve") && File.ReadAllText(f).Contains("../../zoo/"))
        .Select(Path.GetFileNameWithoutExtension).Order()!);

    [Theory]
    [MemberData(nameof(ZooExamples))]
    public void ZooExampleMergesAndLlamaCppRunsTheOutput(string name)
    {
        using var dir = new TempDir();
        var config = MergeConfig.Load(Path.Combine(TestPaths.RepoRoot, "examples", "merge", name + ".yml"));
        var r = MergeEngine.Run(config, dir.File(name + ".gguf"));
        Assert.Empty(r.Warnings); // the examples give only parameters their method reads
        var (tokens, logits) = LlamaRunner.Logits(dir.File(name + ".gguf"), "Q: 7+48= A:");
        Assert.True(tokens.Length > 5);
        Assert.All(logits, l => Assert.All(l, x => Assert.True(float.IsFinite(x))));
    }

    [Fact]
    public void YamlErrorsAreClear()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("a.yml"), "merge_method: ties\nslices:\n  - sources: []\n");
        Assert.Contains("slices[0]: 'sources' must be a non-empty list", Assert.Throws<ConfigException>(() => MergeConfig.Load(dir.File("a.yml"))).Message);
        File.WriteAllText(dir.File("b.yml"), "merge_method: ties\nmodels: [\n");
        Assert.Contains("invalid YAML", Assert.Throws<ConfigException>(() => MergeConfig.Load(dir.File("b.yml"))).Message);
        File.WriteAllText(dir.File("c.yml"), "merge_method: slerp\nmodels:\n  - model: x.gguf\n");
        Assert.Contains("needs base_model", Assert.Throws<ConfigException>(() => MergeEngine.Validate(MergeConfig.Load(dir.File("c.yml")))).Message);
    }
}
