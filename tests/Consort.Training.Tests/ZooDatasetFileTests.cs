using System.Text.Json;
using Consort.Testing;
using Consort.Training;

namespace Consort.Training.Tests;

/// <summary>The committed zoo datasets are what the builder writes, declared completion prompt included.</summary>
public class ZooDatasetFileTests
{
    [Fact]
    public void Committed_datasets_equal_the_builders_output_and_declare_a_completion_prompt()
    {
        using var dir = new TempDir();
        var seed = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "zoo", "manifest.json"))).RootElement.GetProperty("data_seed").GetInt32();
        var data = ZooBuilder.GenerateData(seed);
        foreach (var name in new[] { "arith", "facts_a", "facts_b", "mixed" })
        {
            ZooBuilder.WriteDataset(dir.File(name + ".json"), data[name]);
            Assert.Equal(File.ReadAllBytes(Path.Combine(TestPaths.RepoRoot, "zoo", "datasets", name + ".json")), File.ReadAllBytes(dir.File(name + ".json")));
            using var doc = JsonDocument.Parse(File.ReadAllText(dir.File(name + ".json")));
            var completion = doc.RootElement.GetProperty("completion");
            Assert.Equal("{input}", completion.GetProperty("prompt").GetString());
            Assert.Equal("\n", completion.GetProperty("stop")[0].GetString());
        }
    }
}
