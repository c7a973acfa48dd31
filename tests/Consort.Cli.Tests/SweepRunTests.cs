using System.Text.Json.Nodes;
using Consort.Testing;

namespace Consort.Cli.Tests;

/// <summary>
/// <c>examples/co_llm_sweep.json</c> on the committed zoo: one co_llm run per deferral threshold, the members alone, and
/// the sweep's curve (x: share of answer tokens the mentor wrote) printed and written into each sweep run's summary.json.
/// </summary>
public class SweepRunTests
{
    [Fact]
    public async Task A_co_llm_threshold_sweep_on_real_models_gives_a_curve_from_base_alone_to_the_expert_alone()
    {
        using var dir = new TempDir();
        var config = Path.Combine(TestPaths.RepoRoot, "examples", "co_llm_sweep.json");
        var (code, stdout, stderr) = await CliHarness.RunAsync("run", config, "--out", dir.Path, "--limit", "8");
        Assert.True(code == 0, stderr + stdout);
        Assert.Contains("co_llm (sweep of deferral_threshold): sweep curve (strong = arith", stdout);
        Assert.Contains("APGR", stdout);
        double[] thresholds = [0.1, 0.3, 0.5, 0.7, 0.9];
        var shares = new List<double>();
        foreach (var t in thresholds)
        {
            var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, $"co_llm_deferral_threshold_{t:0.0}", "summary.json")))!;
            var routing = summary["routing"]!;
            Assert.Equal("strong_token_share", (string)routing["x"]!);
            Assert.Equal("deferral_threshold", (string)routing["swept"]!);
            var points = routing["points"]!.AsArray();
            Assert.Equal(thresholds.Length + 2, points.Count); // every threshold and the two members alone
            Assert.Equal(0.0, (double)points[0]!["strong_share"]!);
            Assert.Equal(1.0, (double)points[^1]!["strong_share"]!);
            var mine = points.Single(p => p!["threshold"] is JsonValue v && Math.Abs((double)v - t) < 1e-9)!;
            // The point's score is this run's own mean score over the same items.
            Assert.Equal((double)summary["score"]!, (double)mine["score"]!, 9);
            shares.Add((double)mine["strong_share"]!);
            Assert.NotNull(routing["apgr"]);
        }
        // A higher threshold defers fewer tokens (top1 deferral: defer where 1 − top-1 probability exceeds it).
        for (int i = 1; i < shares.Count; i++) Assert.True(shares[i] <= shares[i - 1] + 1e-9, string.Join(", ", shares));
        Assert.True(shares[0] > shares[^1], string.Join(", ", shares));
    }
}
