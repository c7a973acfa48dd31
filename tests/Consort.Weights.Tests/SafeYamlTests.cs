using Consort.Testing;
using Consort.Weights.Config;

namespace Consort.Weights.Tests;

/// <summary>Merge YAML loads within bounds: depth, alias expansion, size, duplicate and complex keys.</summary>
public sealed class SafeYamlTests
{
    private static ConfigException Fails(string yaml) => Assert.Throws<ConfigException>(() => SafeYaml.Parse(yaml, "m.yml"));

    [Fact]
    public void AliasBombsAreStoppedBeforeExpansion()
    {
        var lines = new List<string> { "a0: &a0 [x, x, x, x, x, x, x, x, x]" };
        for (int i = 1; i < 9; i++) lines.Add($"a{i}: &a{i} [" + string.Join(", ", Enumerable.Repeat($"*a{i - 1}", 9)) + "]");
        var e = Fails(string.Join("\n", lines));
        Assert.Contains("expands to more than 100,000 nodes", e.Message);
        // Aliases that stay small are fine (mergekit configs use them for shared parameters).
        var ok = SafeYaml.Parse("p: &p {weight: 0.5, density: 0.3}\nmodels:\n  - {model: a, parameters: *p}\n  - {model: b, parameters: *p}", "m.yml");
        Assert.Single(ok.Documents);
    }

    [Fact]
    public void DeepNestingIsRefused()
    {
        Assert.Contains("nested more than 64 levels deep", Fails("w: " + new string('[', 100_000) + new string(']', 100_000)).Message);
        Assert.Contains("nested more than 64", Fails(string.Concat(Enumerable.Range(0, 70).Select(i => new string(' ', i * 2) + $"k{i}:\n")) + new string(' ', 140) + "v").Message);
        SafeYaml.Parse("w: " + new string('[', 60) + new string(']', 60), "m.yml");
    }

    [Fact]
    public void DuplicateAndComplexKeysAreNamed()
    {
        var dup = Fails("merge_method: ties\nmodels: []\nmerge_method: linear\n");
        Assert.Contains("line 3: duplicate key 'merge_method'", dup.Message);
        Assert.Contains("duplicate key 'density'", Fails("parameters:\n  density: 0.5\n  density: 0.7\n").Message);
        Assert.Contains("a mapping key must be a plain value", Fails("? [a, b]\n: 1\n").Message);
        Assert.Contains("a mapping key must be a plain value", Fails("? {a: 1}\n: 1\n").Message);
        Assert.Contains("has no anchor", Fails("a: *nowhere\n").Message);
        // Found by the fuzzer: YamlDotNet's scanner throws InvalidOperationException on this (a comment inside a flow list).
        Assert.Contains("invalid YAML", Fails("models:\n  - model: a\n    parameters:\n      weight: [[[0.3, 0.7]  # c]]]\n      density: 0.7\nparameters:\n  normalize: true\n").Message);
    }

    [Fact]
    public void FilesHaveASizeLimitAndFoldersAreNamed()
    {
        using var tmp = new TempDir();
        using (var f = File.Create(tmp.File("big.yml"))) f.SetLength(Limits.MaxYamlBytes + 1);
        Assert.Contains("larger than the limit", Assert.Throws<ConfigException>(() => MergeConfig.Load(tmp.File("big.yml"))).Message);
        Assert.Contains("is a folder, not a YAML file", Assert.Throws<ConfigException>(() => MergeConfig.Load(tmp.Path)).Message);
        File.WriteAllText(tmp.File("bad.yml"), "a: [1, 2\n");
        Assert.Contains("invalid YAML at line", Assert.Throws<ConfigException>(() => MergeConfig.Load(tmp.File("bad.yml"))).Message);
    }

    [Fact]
    public void EveryExampleConfigStillLoads()
    {
        foreach (var file in Directory.GetFiles(Path.Combine(TestPaths.RepoRoot, "examples", "merge"), "*.yml"))
            Assert.NotEmpty(MergeConfig.Load(file).MergeMethod);
    }
}
