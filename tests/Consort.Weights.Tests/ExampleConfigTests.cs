using Consort.Testing;
using Consort.Weights.Config;
using Consort.Weights.Engine;

namespace Consort.Weights.Tests;

public class ExampleConfigTests
{
    [Fact]
    public void EveryMethodHasAValidExampleConfig()
    {
        var folder = Path.Combine(TestPaths.RepoRoot, "examples", "merge");
        var files = Directory.GetFiles(folder, "*.yml");
        foreach (var method in new[] { "linear", "task_arithmetic", "ties", "dare_linear", "dare_ties", "breadcrumbs", "slerp", "model_stock", "expo", "passthrough" })
            Assert.Contains(files, f => Path.GetFileNameWithoutExtension(f) == method);
        foreach (var f in files)
        {
            var c = MergeConfig.Load(f);
            Assert.Equal(Path.GetFileNameWithoutExtension(f), c.MergeMethod);
            MergeEngine.Validate(c);
            Assert.All(c.AllPaths, p => Assert.True(Path.IsPathRooted(p)));
        }
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
