using System.Text.Json.Nodes;
using Consort.Testing;

namespace Consort.Cli.Tests;

/// <summary>
/// Every text-level method of examples/text_methods.json runs on the real zoo experts (llama.cpp, a few items): no item
/// fails, every member is called, and each protocol's roles appear with the inputs the protocol promises (a reviser reads
/// the others' answers, the aggregator reads the proposals, the fuser reads the candidates).
/// </summary>
public class TextMethodsZooTests
{
    // Run -> roles its trace must show (the last part of a trace role, e.g. "round 1 / revise").
    private static readonly Dictionary<string, string[]> Roles = new()
    {
        ["multiagent_refine"] = ["answer", "revise"],
        ["multiagent_feedback"] = ["answer", "feedback", "revise_with_feedback"],
        ["knowledge_card"] = ["knowledge", "answer_with_knowledge"],
        ["llm_blender"] = ["answer", "rank_pair", "fuse"],
        ["mixture_of_agents"] = ["propose", "propose_with_references", "aggregate"],
        ["structured_interaction"] = ["answer", "revise"],
        ["heterogeneous_swarms"] = ["first"],
        ["bbmas"] = ["select"],
        ["slm_mux"] = ["sample"],
    };

    [Fact]
    public async Task Every_text_method_runs_on_the_zoo_experts_and_its_roles_read_the_others_outputs()
    {
        using var dir = new TempDir();
        var config = Path.Combine(TestPaths.RepoRoot, "examples", "text_methods.json");
        var (code, stdout, stderr) = await CliHarness.RunAsync(["run", config, "--out", dir.Path, "--limit", "3", "--no-report", "--only", .. Roles.Keys]);
        Assert.True(code == 0, stderr + stdout);
        string[] members = ["arith", "facts_a", "facts_b"];
        foreach (var (run, roles) in Roles)
        {
            var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, run, "summary.json")))!;
            Assert.Equal(3, summary["n"]!.GetValue<int>());
            Assert.Equal(0, summary["errors"]!.GetValue<int>());
            foreach (var item in CliHarness.Results(Path.Combine(dir.Path, run)))
            {
                var trace = item["trace"]!.AsArray().Select(t => t!.AsObject()).ToList();
                string Role(JsonObject t) => t["role"]!.GetValue<string>().Split(" / ")[^1];
                foreach (var m in members) Assert.True(trace.Any(t => t["model"]!.GetValue<string>() == m), $"{run}: no call to {m}");
                foreach (var r in roles) Assert.True(trace.Any(t => Role(t) == r), $"{run}: no '{r}' call in {string.Join(", ", trace.Select(Role))}");
                // Reading roles see what others wrote before them: some earlier output of another member is in the input.
                foreach (var t in trace.Where(t => Role(t) is "revise" or "revise_with_feedback" or "propose_with_references" or "aggregate" or "fuse" or "answer_with_knowledge"))
                {
                    string input = t["input"]!.GetValue<string>(), model = t["model"]!.GetValue<string>();
                    var earlier = trace.TakeWhile(x => !ReferenceEquals(x, t)).Where(x => x["model"]!.GetValue<string>() != model
                        && x["output"]?.GetValue<string>().Trim() is { Length: > 0 }).Select(x => x["output"]!.GetValue<string>().Trim()).ToList();
                    if (Role(t) == "fuse" || Role(t) == "aggregate" || Role(t) == "answer_with_knowledge")
                        earlier = trace.TakeWhile(x => !ReferenceEquals(x, t)).Select(x => x["output"]?.GetValue<string>().Trim() ?? "").Where(o => o.Length > 0).ToList();
                    Assert.True(earlier.Any(o => input.Contains(o)), $"{run}: {model}'s '{Role(t)}' input does not show an earlier answer: {input}");
                }
            }
        }
    }
}
