using System.Text.Json.Nodes;
using Consort.Testing;

namespace Consort.Cli.Tests.Safety;

/// <summary>
/// TinyStories-656K-Q8_0 has no byte-fallback tokens and no token for '+' or '=': llama.cpp used to abort the
/// process on every zoo:arith prompt. Now each item gets a clear error, or the characters are replaced on request.
/// </summary>
public sealed class UnencodableInputTests
{
    private static string Config(TempDir tmp, string? unencodable)
    {
        var model = new JsonObject { ["name"] = "q8", ["path"] = TestPaths.TinyStories656K };
        if (unencodable is not null) model["unencodable"] = unencodable;
        File.WriteAllText(tmp.File("run.json"), new JsonObject
        {
            ["method"] = "single_model",
            ["task"] = new JsonObject { ["dataset"] = "zoo:arith", ["prompt"] = "{input}", ["max_tokens"] = 6, ["stop"] = new JsonArray("\n") },
            ["models"] = new JsonArray(model),
        }.ToJsonString());
        return tmp.File("run.json");
    }

    [Fact]
    public async Task ArithPromptsGiveAClearErrorNamingModelAndCharacter()
    {
        using var tmp = new TempDir();
        var r = await MeasuredCli.RunAsync(null, "run", Config(tmp, null), "--limit", "4", "--out", tmp.File("out"));
        Assert.True(r.Code < 128, r.ToString());
        var results = CliHarness.Results(tmp.File("out/q8"));
        Assert.Equal(4, results.Count);
        foreach (var item in results)
        {
            var error = (string?)item["error"];
            Assert.NotNull(error);
            Assert.Contains("model 'q8' cannot encode '+' (U+002B)", error);
            Assert.Contains("\"unencodable\": \"replace\"", error);
        }
    }

    [Fact]
    public async Task WithReplaceTheModelAnswersEveryItem()
    {
        using var tmp = new TempDir();
        var r = await MeasuredCli.RunAsync(null, "run", Config(tmp, "replace"), "--limit", "4", "--out", tmp.File("out"));
        Assert.True(r.Code == 0, r.ToString());
        var results = CliHarness.Results(tmp.File("out/q8"));
        Assert.Equal(4, results.Count);
        Assert.All(results, item => Assert.Null(item["error"]));
        Assert.All(results, item => Assert.True((long)item["usage"]!["input_tokens"]! > 3)); // the prompt reached the model
    }

    [Fact]
    public async Task AnUnknownModeIsAConfigErrorBeforeWork()
    {
        using var tmp = new TempDir();
        var r = await MeasuredCli.RunAsync(null, "run", Config(tmp, "ignore"), "--limit", "1", "--out", tmp.File("out"));
        MeasuredCli.AssertClearError(r, mentions: "'unencodable' is 'ignore'; valid values: error, replace");
        Assert.False(Directory.Exists(tmp.File("out")));
    }
}
