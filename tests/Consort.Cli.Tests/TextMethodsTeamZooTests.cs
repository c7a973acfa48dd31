using System.Text.Json.Nodes;
using Consort.Testing;

namespace Consort.Cli.Tests;

/// <summary>
/// The zoo's team models make the reading protocols work on real local models (examples/text_methods_team.json, llama.cpp):
/// the experts write a card or an answer only for what they know and say "-" otherwise, the reader answers from what it
/// reads, so knowledge_card, mixture_of_agents and llm_blender answer questions of several skills, which no single member can.
/// </summary>
public class TextMethodsTeamZooTests
{
    [Fact]
    public async Task Knowledge_card_moa_and_blender_on_the_team_models_answer_across_the_skills()
    {
        using var dir = new TempDir();
        var config = Path.Combine(TestPaths.RepoRoot, "examples", "text_methods_team.json");
        string[] runs = ["knowledge_card", "mixture_of_agents", "llm_blender"];
        var (code, stdout, stderr) = await CliHarness.RunAsync(["run", config, "--out", dir.Path, "--limit", "12", "--no-report", "--only", .. runs]);
        Assert.True(code == 0, stderr + stdout);
        foreach (var run in runs)
        {
            var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, run, "summary.json")))!;
            Assert.Equal(0, summary["errors"]!.GetValue<int>());
            var results = CliHarness.Results(Path.Combine(dir.Path, run));
            Assert.Equal(12, results.Count);
            // 4 items per skill, and each member knows one skill at most: alone it answers 4 of 12 at best. The team answers
            // more, on more than one skill (measured: 9, 8 and 8 of 12).
            var correct = results.Where(r => r["score"]!.GetValue<double>() == 1).Select(r => r["group"]!.ToString()).ToList();
            Assert.True(correct.Count >= 7 && correct.Distinct().Count() >= 2, $"{run}: correct on {string.Join(", ", correct)}");
            foreach (var r in results)
            {
                var trace = r["trace"]!.AsArray().Select(t => t!.AsObject()).ToList();
                // The last call is the reader's, and it read what an expert wrote.
                var last = trace[^1];
                Assert.Equal("team_reader", last["model"]!.ToString());
                Assert.Contains(trace.Take(trace.Count - 1), t => t["model"]!.ToString() != "team_reader"
                    && t["output"]!.ToString().Trim() is { Length: > 1 } o && last["input"]!.ToString().Contains(o));
            }
        }
    }
}
