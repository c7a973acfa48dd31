using System.Text.Json;
using Consort.Testing;
using Consort.Training;

namespace Consort.Training.Tests;

/// <summary>The committed zoo (repo zoo/ folder). All zoo-resolving tests live here: one class runs its tests one at a time,
/// which keeps the CONSORT_ZOO override from leaking into other tests.</summary>
public class ZooTests
{
    private static string ZooDir => Path.Combine(TestPaths.RepoRoot, "zoo");

    [Fact]
    public void Committed_files_match_the_manifest_digests_and_sizes()
    {
        var m = ZooManifest.Load(Path.Combine(ZooDir, "manifest.json"));
        Assert.True(m.Models.Count >= 4);
        Assert.Single(m.Models, x => x.Role == "base");
        Assert.All(m.Models, x =>
        {
            var path = Path.Combine(ZooDir, x.File);
            Assert.Equal(x.Bytes, new FileInfo(path).Length);
            Assert.Equal(x.Sha256, Zoo.Sha256(path));
            Assert.True(x.Training.Steps > 0 && x.Training.SamplerSeed != 0);
        });
        Assert.All(m.Datasets, d => Assert.Equal(d.Sha256, Zoo.Sha256(Path.Combine(ZooDir, d.File))));
        Assert.Contains(m.Datasets, d => d.Name == "mixed");
        // The LoRA adapters: one per skill, of the base, each file as the manifest says.
        Assert.Equal(["arith-lora", "facts_a-lora", "facts_b-lora"], m.Adapters.Select(a => a.Name).Order().ToArray());
        Assert.All(m.Adapters, a =>
        {
            var path = Path.Combine(ZooDir, a.File);
            Assert.Equal(a.Bytes, new FileInfo(path).Length);
            Assert.Equal(a.Sha256, Zoo.Sha256(path));
            Assert.Equal("base", a.Base);
            Assert.True(a.Training.Steps > 0 && a.Scores[a.Skill] > m.Models.Single(x => x.Role == "base").Scores[a.Skill] + 0.3);
        });
    }

    [Fact]
    public void Experts_load_in_llama_cpp_and_reproduce_their_own_skill_scores()
    {
        var m = ZooManifest.Load(Path.Combine(ZooDir, "manifest.json"));
        foreach (var x in m.Models.Where(x => x.Role == "expert"))
        {
            using var check = new LlamaCppCheck(Path.Combine(ZooDir, x.File), 256, threads: 1);
            var ds = JsonDocument.Parse(File.ReadAllText(Path.Combine(ZooDir, "datasets", x.Skill + ".json")));
            var items = ds.RootElement.GetProperty("test").EnumerateArray()
                .Select(e => new Skills.SkillItem(e.GetProperty("id").GetString()!, e.GetProperty("input").GetString()!, e.GetProperty("output").GetString()!, x.Skill!)).ToList();
            double acc = check.Score(items).Accuracy;
            // Greedy decoding of the same file on the same test split: only float-order noise may flip an answer.
            Assert.True(Math.Abs(acc - x.Scores[x.Skill!]) <= 0.02, $"{x.Name}: {acc} vs manifest {x.Scores[x.Skill!]}");
            Assert.True(x.Scores[x.Skill!] > x.Scores.Where(kv => kv.Key != x.Skill && kv.Key != "mixed").Max(kv => kv.Value), $"{x.Name} is not a specialist");
        }
    }

    [Fact]
    public void Zoo_references_resolve_to_files_and_bad_ones_are_explained()
    {
        var arith = Zoo.ResolveModel("zoo:arith");
        Assert.True(File.Exists(arith));
        Assert.Equal(Path.Combine(ZooDir, "arith.gguf"), arith);
        Assert.True(File.Exists(Zoo.ResolveDataset("zoo:mixed")));
        Assert.Contains("not found", Assert.Throws<ConsortException>(() => Zoo.ResolveModel("zoo:nope")).Message);
        Assert.Contains("not a zoo reference", Assert.Throws<ConsortException>(() => Zoo.ResolveModel("arith")).Message);

        using var dir = new TempDir();
        File.Copy(Path.Combine(ZooDir, "manifest.json"), dir.File("manifest.json"));
        Environment.SetEnvironmentVariable(Zoo.EnvVar, dir.Path);
        try
        {
            // The override is honoured: the manifest is there but the model file is not.
            Assert.Contains("missing", Assert.Throws<ModelFileException>(() => Zoo.ResolveModel("zoo:arith")).Message);
        }
        finally { Environment.SetEnvironmentVariable(Zoo.EnvVar, null); }
    }
}
