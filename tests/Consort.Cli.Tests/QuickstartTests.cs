using System.Text.Json.Nodes;
using Consort.Testing;

namespace Consort.Cli.Tests;

/// <summary>The README's main job on the committed zoo: experts reproduce the manifest, collaboration wins.</summary>
public class QuickstartTests
{
    [Fact]
    public async Task QuickstartReproducesTheManifestAndCollaborationBeatsTheBestExpert()
    {
        using var dir = new TempDir();
        var config = Path.Combine(TestPaths.RepoRoot, "examples", "quickstart.json");
        var (code, stdout, stderr) = await CliHarness.RunAsync("run", config, "--out", dir.Path,
            "--only", "arith", "facts_a", "facts_b", "majority_vote", "most_confident");
        Assert.True(code == 0, stderr + stdout);

        var manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "zoo", "manifest.json")))!;
        var expected = manifest["models"]!.AsArray().ToDictionary(m => m!["name"]!.GetValue<string>(), m => m!["scores"]!);
        double bestSingle = 0;
        foreach (var expert in new[] { "arith", "facts_a", "facts_b" })
        {
            var s = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, expert, "summary.json")))!;
            double mixed = s["score"]!.GetValue<double>();
            bestSingle = Math.Max(bestSingle, mixed);
            Assert.Equal(expected[expert]["mixed"]!.GetValue<double>(), mixed, 0.03);
            var groups = s["groups"]!.AsObject();
            foreach (var (skill, g) in groups)
            {
                double score = g!["score"]!.GetValue<double>();
                if (skill == expert) Assert.True(score >= 0.8, $"{expert} scores {score} on its own skill");
                else Assert.True(score <= 0.1, $"{expert} scores {score} on {skill}");
            }
        }
        double bestCollab = new[] { "majority_vote", "most_confident" }
            .Max(r => JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, r, "summary.json")))!["score"]!.GetValue<double>());
        Assert.True(bestCollab >= bestSingle + 0.15, $"best collaboration {bestCollab:F3} vs best expert {bestSingle:F3}");
    }
}
