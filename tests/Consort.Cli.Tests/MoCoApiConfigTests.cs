using Consort.Testing;

namespace Consort.Cli.Tests;

/// <summary>
/// MoCo's API-level cascade example (examples/api_cascade.json), as it is but for the model names, with and without the
/// method-specific hyperparameters its README documents (<c>mode</c>: logit or just_ask, <c>percentage</c>), binds and
/// passes <c>consort validate</c>, every check a run makes before work; bad values fail there with one line.
/// </summary>
public class MoCoApiConfigTests
{
    private const string Common = "\"max_response_length\": 512, \"temperature\": 0.7, \"top_p\": 0.9, \"batch_size\": 32";

    public static TheoryData<string, string?> Configs => new()
    {
        { Common, null },
        { Common + ", \"mode\": \"logit\", \"percentage\": 0.5", null },
        { Common + ", \"mode\": \"just_ask\", \"percentage\": 0.5", null },
        { Common + ", \"mode\": \"ask\"", "'mode' = \"ask\" is not valid; valid: logit, just_ask" },
        { Common + ", \"percentage\": 50", "'percentage'" },
    };

    [Theory]
    [MemberData(nameof(Configs))]
    public async Task MoCos_cascade_example_binds_unchanged_but_for_the_model_names(string hyperparameters, string? refused)
    {
        using var dir = new TempDir();
        var path = dir.File("api_cascade.json");
        File.WriteAllText(path, $$"""
            {
                "method": "api_cascade",
                "task": "agieval_tiny",
                "task_type": "multiple_choice",
                "gpu_ids": [0,1],
                "model_names": ["zoo:arith", "zoo:facts_a", "zoo:facts_b"],
                "hyperparameters": { {{hyperparameters}} }
            }
            """);
        var (code, stdout, stderr) = await CliHarness.RunAsync("validate", path, "--out", dir.File("out"));
        if (refused is null)
        {
            Assert.True(code == 0, stderr + stdout);
            Assert.Contains("ok: api_cascade: 1 run(s) on agieval_tiny", stdout);
            return;
        }
        Assert.Equal(1, code);
        Assert.StartsWith("error: ", stderr.Trim());
        Assert.Single(stderr.Trim().Split('\n'));
        Assert.Contains(refused, stderr);
    }
}
