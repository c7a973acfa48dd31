using System.Text.Json.Nodes;
using Consort.Testing;

namespace Consort.Cli.Tests;

/// <summary>The issue's observations, reproduced through the real CLI on the committed zoo and real loopback sockets.</summary>
public class TrustedRunTests
{
    private static string Write(TempDir dir, string name, string json)
    {
        var path = dir.File(name);
        File.WriteAllText(path, json);
        return path;
    }

    private static JsonNode Json(string path) => JsonNode.Parse(File.ReadAllText(path))!;

    [Fact]
    public async Task AnEndpointThatIsDownFailsLoudlyWithTheCauseAndADistinctExitCode()
    {
        using var dir = new TempDir();
        // A port held by a socket that never listens: connecting is refused, and no other test can take the port meanwhile.
        using var holder = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        holder.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        int port = ((System.Net.IPEndPoint)holder.LocalEndPoint!).Port;
        var cfg = Write(dir, "down.json", $$"""
            { "method": "single_model", "task": "zoo:mixed", "concurrency": 2,
              "models": [ { "name": "remote", "type": "openai", "base_url": "http://127.0.0.1:{{port}}/v1", "model": "m", "top_logprobs": 0,
                            "timeout_s": 20, "max_retries": 0 } ] }
            """);
        var (code, stdout, stderr) = await CliHarness.RunAsync("run", cfg, "--out", dir.File("out"), "--limit", "5");
        Assert.Equal(3, code);
        Assert.Contains("errors", stdout); // a column of the table
        var last = stderr.Trim().Split('\n')[^1];
        Assert.StartsWith("error: 5 item(s) failed in 'remote' (5 of 5)", last);
        Assert.Contains("connection refused", last, StringComparison.OrdinalIgnoreCase);
        var summary = Json(Path.Combine(dir.File("out"), "remote", "summary.json"));
        Assert.Equal(5, summary["errors"]!.GetValue<int>());
        Assert.Contains("connection refused", summary["first_error"]!.GetValue<string>(), StringComparison.OrdinalIgnoreCase);
        var row = Json(Path.Combine(dir.File("out"), "comparison.json"))["runs"]![0]!;
        Assert.Equal(5, row["errors"]!.GetValue<int>());
        Assert.Contains("connection refused", row["first_error"]!.GetValue<string>(), StringComparison.OrdinalIgnoreCase);

        var (allowed, _, allowedErr) = await CliHarness.RunAsync("run", cfg, "--out", dir.File("out2"), "--limit", "5", "--allow-errors");
        Assert.Equal(0, allowed);
        Assert.Contains("warning: 5 item(s) failed", allowedErr);
    }

    [Fact]
    public async Task AChangedDefinitionIsRefusedNamingTheChangeAndFreshStartsOver()
    {
        using var dir = new TempDir();
        string Config(double rate) => $$"""
            { "task": "zoo:mixed", "models": [ { "name": "arith", "path": "zoo:arith" }, { "name": "facts_a", "path": "zoo:facts_a" } ],
              "runs": [ { "name": "cascade", "method": "cascade", "hyperparameters": { "deferral_rate": {{rate}}, "calibration_size": 8 } } ] }
            """;
        var cfg = Write(dir, "c.json", Config(0.5));
        var outDir = dir.File("out");
        var (code, o, e) = await CliHarness.RunAsync("run", cfg, "--out", outDir, "--limit", "6");
        Assert.True(code == 0, e + o);
        File.WriteAllText(cfg, Config(0.95));
        (code, o, e) = await CliHarness.RunAsync("run", cfg, "--out", outDir, "--limit", "6");
        Assert.Equal(1, code);
        var line = Assert.Single(e.Trim().Split('\n'));
        Assert.Contains("options changed", line);
        Assert.Contains("\"deferral_rate\":0.5", line);
        Assert.Contains("\"deferral_rate\":0.95", line);
        Assert.Contains("--fresh", line);
        (code, o, e) = await CliHarness.RunAsync("run", cfg, "--out", outDir, "--limit", "6", "--fresh");
        Assert.True(code == 0, e + o);
        var summary = Json(Path.Combine(outDir, "cascade", "summary.json"));
        Assert.Equal(0, summary["resumed"]!.GetValue<int>());
        Assert.Equal(0.95, summary["config"]!["runs"]![0]!["hyperparameters"]!["deferral_rate"]!.GetValue<double>());
        // A larger limit reuses the six items.
        (code, o, e) = await CliHarness.RunAsync("run", cfg, "--out", outDir, "--limit", "9");
        Assert.True(code == 0, e + o);
        Assert.Equal(6, Json(Path.Combine(outDir, "cascade", "summary.json"))["resumed"]!.GetValue<int>());
    }

    [Fact]
    public async Task TheReadmeSnippetWithABareZooDatasetScoresAndLimitSamplesEverySkill()
    {
        using var dir = new TempDir();
        // The README's comparison snippet, as written: "task" is the bare dataset name.
        var cfg = Write(dir, "snippet.json", """
            { "task": "zoo:mixed", "baselines": true,
              "models": [ { "name": "arith", "path": "zoo:arith" }, { "name": "facts_a", "path": "zoo:facts_a" } ],
              "runs": [ { "name": "router", "method": "likelihood_router" }, { "name": "vote", "method": "majority_vote" } ] }
            """);
        var (code, stdout, stderr) = await CliHarness.RunAsync("run", cfg, "--out", dir.File("out"), "--limit", "30", "--no-report");
        Assert.True(code == 0, stderr + stdout);
        Assert.Contains("prompt: completion", stdout);
        foreach (var run in new[] { "arith", "facts_a" })
        {
            var s = Json(Path.Combine(dir.File("out"), run, "summary.json"));
            var groups = s["groups"]!.AsObject();
            Assert.Equal(["arith", "facts_a", "facts_b"], groups.Select(g => g.Key).Order()); // all three skills in 30 items
            Assert.Equal(10, groups["arith"]!["n"]!.GetValue<int>());
            Assert.True(groups[run]!["score"]!.GetValue<double>() >= 0.8, $"{run} on its own skill: {groups[run]}");
            Assert.Equal("completion", s["prompt_style"]!.GetValue<string>());
        }
        Assert.True(Json(Path.Combine(dir.File("out"), "vote", "summary.json"))["score"]!.GetValue<double>() > 0.4);
        // Per-domain scores are columns of the printed table.
        var header = stdout.Split('\n').First(l => l.Contains("method") && l.Contains("score"));
        Assert.Contains("facts_b", header);
        Assert.DoesNotContain("no extractable answer", stderr);
    }

    [Fact]
    public async Task APromptTheModelsCannotFollowIsReportedWithAnExampleOutput()
    {
        using var dir = new TempDir();
        var cfg = Write(dir, "instr.json", """
            { "method": "single_model", "models": ["zoo:arith"],
              "task": { "dataset": "zoo:mixed", "prompt": "{input}\n\nEnd your reply with a line \"Answer: <final answer>\"." } }
            """);
        var (code, stdout, stderr) = await CliHarness.RunAsync("run", cfg, "--out", dir.File("out"), "--limit", "6", "--no-report");
        Assert.True(code == 0, stderr + stdout);
        var warning = stderr.Split('\n').Single(l => l.StartsWith("warning: run 'arith'"));
        Assert.Contains("outputs held no extractable answer", warning);
        Assert.Contains("e.g. item ", warning);
        Assert.Contains("\"prompt\"", warning);
    }

    [Fact]
    public async Task ValidateMakesTheChecksRunMakesWithoutLoadingWeights()
    {
        using var dir = new TempDir();
        var quickstart = Path.Combine(TestPaths.RepoRoot, "examples", "quickstart.json");
        var (code, stdout, stderr) = await CliHarness.RunAsync("validate", quickstart, "--out", dir.File("q"));
        Assert.True(code == 0, stderr + stdout);
        Assert.StartsWith("ok: quickstart: 9 run(s) on zoo_mixed (test, 180 items; prompt: config)", stdout.Trim());
        Assert.False(Directory.Exists(dir.File("q"))); // nothing written

        // The same one-line errors as run, for each check.
        var bad = Write(dir, "bad.json", """{ "method": "logit_fusion", "task": "zoo:mixed", "models": ["zoo:arith", "missing.gguf"] }""");
        foreach (var command in new[] { "validate", "run" })
        {
            var (c, _, e) = await CliHarness.RunAsync(command, bad, "--out", dir.File("o"));
            Assert.Equal(1, c);
            Assert.Contains("missing.gguf", Assert.Single(e.Trim().Split('\n')));
        }
        var badSplit = Write(dir, "split.json", """{ "method": "single_model", "task": "zoo:mixed", "models": ["zoo:arith"], "split": "train" }""");
        Assert.Contains("--split must be dev or test", (await CliHarness.RunAsync("validate", badSplit)).Err);
    }

    [Fact]
    public async Task HelpUsageErrorsAndOutputPathsAreOneClearLine()
    {
        using var dir = new TempDir();
        foreach (var args in new[] { Array.Empty<string>(), ["help"] })
        {
            var (code, stdout, _) = await CliHarness.RunAsync(args);
            Assert.Equal(0, code);
            Assert.Contains("Usage:", stdout);
            Assert.Contains("run", stdout);
            Assert.Contains("compare", stdout);
        }
        var (hc, help, _) = await CliHarness.RunAsync("help", "run");
        Assert.Equal(0, hc);
        Assert.Contains("--limit", help);
        Assert.Contains("stratified", help);

        var cfg = Path.Combine(TestPaths.RepoRoot, "examples", "quickstart.json");
        var (lc, _, le) = await CliHarness.RunAsync("run", cfg, "--limit", "abc");
        Assert.Equal(2, lc);
        var line = Assert.Single(le.Trim().Split('\n'));
        Assert.StartsWith("error: --limit: 'abc' is not a whole number", line);
        Assert.DoesNotContain("System.", line);

        File.WriteAllText(dir.File("afile"), "x");
        var (oc, _, oe) = await CliHarness.RunAsync("run", cfg, "--out", dir.File("afile"));
        Assert.Equal(1, oc);
        Assert.Equal($"error: --out {dir.File("afile")}: is a file; give a folder", oe.Trim());
        var (nc, _, ne) = await CliHarness.RunAsync("run", cfg, "--out", Path.Combine(dir.File("afile"), "sub"));
        Assert.Equal(1, nc);
        Assert.Contains("is a file, not a folder", ne);
    }

    [Fact]
    public async Task ModelReferencesWorkInInspectAndConvert()
    {
        using var dir = new TempDir();
        var (code, stdout, stderr) = await CliHarness.RunAsync("inspect", "zoo:arith", "--json");
        Assert.True(code == 0, stderr);
        Assert.Equal("llama", Json(Write(dir, "i.json", stdout))["architecture"]!.GetValue<string>());
        var (cc, co, ce) = await CliHarness.RunAsync("convert", "zoo:base", dir.File("base-hf"), "--dtype", "f16");
        Assert.True(cc == 0, ce + co);
        Assert.True(File.Exists(Path.Combine(dir.File("base-hf"), "config.json")));
        var (bc, _, be) = await CliHarness.RunAsync("inspect", "zoo:nope");
        Assert.Equal(1, bc);
        Assert.Contains("zoo model 'nope' not found", be);
    }
}
