using System.Text.Json.Nodes;
using Consort.Testing;

namespace Consort.Cli.Tests;

/// <summary>
/// MoCo's text-level example configs (BunsenFeng/model_collaboration, examples/text_*.json) as they are but for the model
/// names: method name, task, task_type, gpu_ids and hyperparameters bind in <c>consort validate</c> (every check a run makes
/// before work); the three methods that train members are refused with their reason.
/// </summary>
public class MoCoTextConfigTests
{
    // The common part of every MoCo example's hyperparameters.
    private const string Common = "\"max_response_length\": 512, \"temperature\": 0.7, \"top_p\": 0.9, \"batch_size\": 32";

    public static TheoryData<string, string, string?> Configs => new()
    {
        { "text_multiagent_refine", Common + ", \"round\": 1", null },
        { "text_multiagent_feedback", Common + ", \"round\": 1", null },
        { "text_knowledge_card", Common, null },
        { "text_llm_blender", Common, null },
        { "text_structure", Common + ", \"structure_type\": \"star\"", null },
        { "text_heterogeneous_swarms", Common + ", \"max_iterations\": 3, \"ratio\": 1.0", null },
        { "text_bbmas", Common, null },
        { "text_slm_mux", Common + ", \"samples_per_model\": 5, \"tie\": \"dev-based\", \"seed\": 42", null },
        { "text_majority_vote", Common, null },
        { "text_agglm", Common + ", \"reuse_log\": 0, \"train_batch_size\": 4", "reinforcement learning" },
        { "text_multiagent_finetuning", Common, "fine-tunes every debating agent" },
        { "text_sparta", Common, "is not available in Consort" },
    };

    [Theory]
    [MemberData(nameof(Configs))]
    public async Task A_MoCo_text_example_binds_unchanged_but_for_the_model_names(string method, string hyperparameters, string? refused)
    {
        using var dir = new TempDir();
        var path = dir.File(method + ".json");
        // MoCo's form: model_names, gpu_ids, task by name (agieval_tiny is in ../shared/datasets), task_type.
        File.WriteAllText(path, $$"""
            {
                "method": "{{method}}",
                "task": "agieval_tiny",
                "task_type": "multiple_choice",
                "gpu_ids": [0,1,2,3],
                "model_names": ["zoo:base", "zoo:arith", "zoo:facts_a", "zoo:facts_b"],
                "hyperparameters": { {{hyperparameters}} }
            }
            """);
        Assert.NotNull(JsonNode.Parse(File.ReadAllText(path)));
        var (code, stdout, stderr) = await CliHarness.RunAsync("validate", path, "--out", dir.File("out"));
        if (refused is null)
        {
            Assert.True(code == 0, stderr + stdout);
            Assert.Contains($"ok: {method}: 1 run(s) on agieval_tiny", stdout);
        }
        else
        {
            Assert.Equal(1, code);
            Assert.Contains(refused, stderr);
            Assert.StartsWith("error: ", stderr.Trim());
            Assert.Single(stderr.Trim().Split('\n'));
        }
        Assert.False(Directory.Exists(Path.Combine(dir.File("out"), method)) && Directory.EnumerateFiles(Path.Combine(dir.File("out"), method), "results.jsonl").Any());
    }
}
