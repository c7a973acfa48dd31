using Consort.Testing;

namespace Consort.Cli.Tests;

/// <summary>Every run of a config is validated (every hyperparameter value) before any model loads or item is scored.</summary>
public class ValidationBeforeWorkTests
{
    private static string Config(TempDir dir, string body)
    {
        CliHarness.WriteStoryDataset(dir.Path, 6);
        var path = dir.File("run.json");
        File.WriteAllText(path, body.Replace("{{S}}", TestPaths.Stories260K).Replace("{{X}}", TestPaths.Llama2Xs));
        return path;
    }

    [Fact]
    public async Task A_bad_value_in_a_later_run_fails_before_the_first_run_scores_anything()
    {
        using var dir = new TempDir();
        var cfg = Config(dir, """
            { "task": { "dataset": "stories", "max_tokens": 8 },
              "models": [ { "name": "s260k", "path": "{{S}}" }, { "name": "xs", "path": "{{X}}" } ],
              "runs": [ { "name": "vote", "method": "majority_vote", "hyperparameters": { "samples": 1 } },
                        { "name": "fusion", "method": "logit_fusion", "hyperparameters": { "combine": "average" } } ] }
            """);
        var (code, stdout, stderr) = await CliHarness.RunAsync("run", cfg, "--out", dir.File("out"));
        Assert.NotEqual(0, code);
        Assert.Contains("run 'fusion' (method logit_fusion): hyperparameter 'combine' = \"average\" is not valid; valid: prob, logprob", stderr);
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.False(File.Exists(Path.Combine(dir.File("out"), "vote", "results.jsonl")), "the vote run must not have scored items: " + stdout);
    }

    [Fact]
    public async Task A_nested_single_model_keeps_its_token_access_inside_a_logit_fusion()
    {
        using var dir = new TempDir();
        var cfg = Config(dir, """
            { "task": { "dataset": "stories", "max_tokens": 8 }, "method": "logit_fusion",
              "models": [ { "name": "solo", "method": "single_model", "models": ["{{S}}"] }, "{{X}}" ] }
            """);
        var (code, stdout, stderr) = await CliHarness.RunAsync("run", cfg, "--out", dir.File("out"), "--limit", "2");
        Assert.True(code == 0, stderr + stdout);
        var results = CliHarness.Results(Path.Combine(dir.File("out"), "run"));
        Assert.Equal(2, results.Count);
        Assert.All(results, r => Assert.False(string.IsNullOrEmpty(r["output"]?.GetValue<string>())));
    }
}
