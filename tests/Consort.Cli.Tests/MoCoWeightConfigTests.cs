using Consort.Testing;

namespace Consort.Cli.Tests;

/// <summary>
/// MoCo's weight-level example configs (examples/weight_greedy_soup.json, weight_expo.json, weight_dare_ties.json, weight_lorahub.json, weight_model_swarms.json), and its
/// logit-level ones (logit_logit_contrastive.json, logit_logit_fusion.json), as they are but for the model names (MoCo's LoRA members mapped to the zoo experts, or for lorahub and model_swarms to the zoo's LoRA adapters, dare_ties' base to the zoo's base.gguf) bind and pass
/// <c>consort validate</c>, every check a run makes before work.
/// </summary>
public class MoCoWeightConfigTests
{
    private const string Common = "\"max_response_length\": 512, \"temperature\": 0.7, \"top_p\": 0.9, \"batch_size\": 32";

    public static TheoryData<string, string> Configs => new()
    {
        { "weight_greedy_soup", Common },
        { "weight_expo", Common + ", \"mode\": \"worst_to_best\"" },
        // MoCo names the base by its Hugging Face name; here the zoo's base file.
        { "weight_dare_ties", Common + $", \"base_model_name\": \"{Path.Combine(TestPaths.RepoRoot, "zoo", "base.gguf")}\"" },
        { "logit_logit_contrastive", "\"max_response_length\": 512, \"temperature\": 0.7, \"top_p\": 0.9, \"batch_size\": 1" },
        { "logit_logit_fusion", "\"max_response_length\": 512, \"temperature\": 0.7, \"top_p\": 0.9, \"batch_size\": 1" },
    };

    [Theory]
    [MemberData(nameof(Configs))]
    public Task A_MoCo_weight_or_logit_example_binds_unchanged_but_for_the_model_names(string method, string hyperparameters) =>
        BindsAsync(method, hyperparameters, "zoo:arith", "zoo:facts_a", "zoo:facts_b");

    public static TheoryData<string, string> LoraConfigs => new()
    {
        { "weight_lorahub", Common + ", \"lorahub_dev_samples\": 100" },
        { "weight_model_swarms", Common + ", \"fast_merge_flag\": 1" },
    };

    // MoCo's bunsenfeng/parti_{0,1,2}_lora adapters mapped to the zoo's adapters of zoo:base.
    [Theory]
    [MemberData(nameof(LoraConfigs))]
    public Task A_MoCo_LoRA_example_binds_unchanged_but_for_the_model_names_mapped_to_the_zoo_adapters(string method, string hyperparameters) =>
        BindsAsync(method, hyperparameters, "zoo:arith-lora", "zoo:facts_a-lora", "zoo:facts_b-lora");

    private static async Task BindsAsync(string method, string hyperparameters, params string[] models)
    {
        using var dir = new TempDir();
        var path = dir.File(method + ".json");
        File.WriteAllText(path, $$"""
            {
                "method": "{{method}}",
                "task": "agieval_tiny",
                "task_type": "multiple_choice",
                "gpu_ids": [0,1,2],
                "model_names": [{{string.Join(", ", models.Select(m => $"\"{m}\""))}}],
                "hyperparameters": { {{hyperparameters}} }
            }
            """);
        var (code, stdout, stderr) = await CliHarness.RunAsync("validate", path, "--out", dir.File("out"));
        Assert.True(code == 0, stderr + stdout);
        Assert.Contains($"ok: {method}: 1 run(s) on agieval_tiny", stdout);
    }

    [Fact]
    public async Task Lorahub_over_an_adapter_for_a_different_base_fails_before_work()
    {
        using var dir = new TempDir();
        var path = dir.File("bad.json");
        var adapter = Path.Combine(TestPaths.RepoRoot, "zoo", "arith-lora.gguf").Replace("\\", "/");
        File.WriteAllText(path, $$"""
            {
                "method": "weight_lorahub",
                "task": "agieval_tiny",
                "models": ["zoo:facts_a-lora", { "name": "odd", "path": "{{TestPaths.Stories260K.Replace("\\", "/")}}", "lora": ["{{adapter}}"] }]
            }
            """);
        var (code, _, stderr) = await CliHarness.RunAsync("validate", path, "--out", dir.File("out"));
        Assert.Equal(1, code);
        Assert.StartsWith("error: ", stderr.Trim());
        Assert.Contains("does not fit", stderr);
        Assert.Contains("an adapter for a different base model", stderr);
    }

    [Fact]
    public async Task Weight_search_over_members_of_different_architectures_fails_before_work()
    {
        using var dir = new TempDir();
        var path = dir.File("bad.json");
        File.WriteAllText(path, $$"""
            {
                "method": "weight_greedy_soup",
                "task": "agieval_tiny",
                "model_names": ["zoo:arith", "{{TestPaths.Stories260K}}"]
            }
            """);
        var (code, _, stderr) = await CliHarness.RunAsync("validate", path, "--out", dir.File("out"));
        Assert.Equal(1, code);
        Assert.StartsWith("error: ", stderr.Trim());
        Assert.Contains("members must share one architecture", stderr);
    }
}
