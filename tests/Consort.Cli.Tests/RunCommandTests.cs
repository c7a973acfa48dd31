using System.Diagnostics;
using System.Text.Json.Nodes;
using Consort.Testing;

namespace Consort.Cli.Tests;

public class RunCommandTests
{
    private static string Config(TempDir dir, string body)
    {
        CliHarness.WriteStoryDataset(dir.Path, 40);
        var path = dir.File("run.json");
        File.WriteAllText(path, body.Replace("{{S}}", TestPaths.Stories260K).Replace("{{X}}", TestPaths.Llama2Xs));
        return path;
    }

    [Fact]
    public async Task RunsSingleModelsAndACollaborationSideBySide()
    {
        using var dir = new TempDir();
        var cfg = Config(dir, """
            { "task": { "dataset": "stories", "max_tokens": 12 }, "baselines": true,
              "models": [ { "name": "s260k", "path": "{{S}}" }, { "name": "xs", "path": "{{X}}" } ],
              "runs": [ { "name": "vote", "method": "majority_vote", "hyperparameters": { "samples": 1 } } ] }
            """);
        var (code, stdout, stderr) = await CliHarness.RunAsync("run", cfg, "--out", dir.File("out"), "--limit", "5");
        Assert.True(code == 0, stderr + stdout);
        foreach (var run in new[] { "s260k", "xs", "vote" })
        {
            var results = CliHarness.Results(Path.Combine(dir.File("out"), run));
            Assert.Equal(5, results.Count);
            var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.File("out"), run, "summary.json")))!;
            Assert.Equal(5, summary["n"]!.GetValue<int>());
        }
        Assert.Contains("vote", stdout);
        Assert.Contains("s260k", stdout);
        var voteLine = CliHarness.Results(Path.Combine(dir.File("out"), "vote"))[0];
        Assert.Equal(2, voteLine["trace"]!.AsArray().Count); // one sample from each model
        var comparison = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.File("out"), "comparison.json")))!;
        Assert.Equal(3, comparison["runs"]!.AsArray().Count);
    }

    [Fact]
    public async Task KilledRunResumesWithEveryItemExactlyOnce()
    {
        using var dir = new TempDir();
        var cfg = Config(dir, """{ "method": "single_model", "task": { "dataset": "stories", "max_tokens": 120 }, "models": ["{{S}}"], "concurrency": 1 }""");
        var outDir = dir.File("out");
        using (var p = Process.Start(CliHarness.StartInfo("run", cfg, "--out", outDir))!)
        {
            _ = p.StandardOutput.ReadToEndAsync();
            _ = p.StandardError.ReadToEndAsync();
            var results = Path.Combine(outDir, "stories260K", "results.jsonl");
            var sw = Stopwatch.StartNew();
            while (sw.Elapsed < TimeSpan.FromSeconds(90) && !p.HasExited && (!File.Exists(results) || File.ReadAllLines(results).Length < 3))
                await Task.Delay(10);
            Assert.False(p.HasExited, "the run finished before it could be killed");
            p.Kill(entireProcessTree: true); // SIGKILL: no cleanup runs
            await p.WaitForExitAsync();
        }
        int before = File.ReadAllLines(Path.Combine(outDir, "stories260K", "results.jsonl")).Length;
        Assert.InRange(before, 3, 39);

        var (code, stdout, stderr) = await CliHarness.RunAsync("run", cfg, "--out", outDir);
        Assert.True(code == 0, stderr + stdout);
        var ids = CliHarness.Results(Path.Combine(outDir, "stories260K")).Select(r => r["id"]!.ToString()).ToList();
        Assert.Equal(40, ids.Count);
        Assert.Equal(40, ids.Distinct().Count());
        Assert.Equal(Enumerable.Range(0, 40).Select(i => $"s{i}").Order(), ids.Order());
    }

    [Theory]
    [InlineData("""{ "method": "single_model", "task": "stories", "models": ["nope.gguf"] }""", "nope.gguf")]
    [InlineData("""{ "method": "logit_fusion", "task": "stories", "models": ["{{S}}", "{{V}}"] }""", "vocabulary")]
    [InlineData("""{ "method": "nonsense", "task": "stories", "models": ["{{S}}"] }""", "unknown method 'nonsense'")]
    [InlineData("""{ "method": "single_model", "task": "no_such_dataset", "models": ["{{S}}"] }""", "no_such_dataset")]
    public async Task BadConfigsExitNonZeroWithOneLineReason(string body, string expected)
    {
        using var dir = new TempDir();
        var cfg = Config(dir, body.Replace("{{V}}", TestPaths.TinyStories656K));
        var (code, _, stderr) = await CliHarness.RunAsync("run", cfg, "--out", dir.File("out"));
        Assert.NotEqual(0, code);
        var lines = stderr.Trim().Split('\n');
        Assert.Single(lines);
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(expected, lines[0]);
    }

    [Fact]
    public async Task MethodsListsEveryMethodWithItsLevel()
    {
        var (code, stdout, _) = await CliHarness.RunAsync("methods", "--json");
        Assert.Equal(0, code);
        var methods = JsonNode.Parse(stdout)!.AsArray();
        var names = methods.Select(m => m!["name"]!.GetValue<string>()).ToList();
        foreach (var n in new[] { "single_model", "majority_vote", "cascade", "logit_fusion" }) Assert.Contains(n, names);
        Assert.Equal("logit", methods.First(m => m!["name"]!.GetValue<string>() == "logit_fusion")!["level"]!.GetValue<string>());
    }
}
