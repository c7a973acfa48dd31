using System.Text.Json.Nodes;
using Consort.Testing;
using Xunit.Abstractions;

namespace Consort.Cli.Tests;

/// <summary>
/// An API method over a local model and a model served by a real <c>consort serve</c> process (loopback), reached through
/// the OpenAI backend: a cascade from the local arithmetic expert (token probabilities from llama.cpp) to the facts_b
/// expert behind the endpoint, on zoo:mixed, with both members alone as baselines.
/// </summary>
public class MixedEndpointRunTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_cascade_from_a_local_model_to_a_served_one_uses_both_and_beats_each_alone()
    {
        using var dir = new TempDir();
        int port = TestNet.FreePort();
        var serve = dir.File("serve.json");
        File.WriteAllText(serve, """{ "models": [ { "name": "facts_b", "path": "zoo:facts_b" } ] }""");
        var run = dir.File("run.json");
        File.WriteAllText(run, $$"""
            { "task": { "dataset": "zoo:mixed", "prompt": "{input}", "max_tokens": 16, "stop": ["\n"] }, "baselines": true, "concurrency": 2,
              "models": [ { "name": "arith", "path": "zoo:arith" },
                          { "name": "facts_b", "type": "openai", "base_url": "http://127.0.0.1:{{port}}/v1", "model": "facts_b", "timeout_s": 60, "max_retries": 1 } ],
              "runs": [ { "name": "cascade", "method": "cascade", "hyperparameters": { "deferral_rate": 0.5 } } ] }
            """);
        var server = await CliHarness.StartServerAsync(serve, port);
        try
        {
            var (code, stdout, stderr) = await CliHarness.RunWithAsync(null, null, TimeSpan.FromMinutes(5), "run", run, "--out", dir.File("out"), "--limit", "30");
            Assert.True(code == 0, stderr + stdout);
            double Score(string name) => (double)JsonNode.Parse(File.ReadAllText(Path.Combine(dir.File("out"), name, "summary.json")))!["score"]!;
            var results = CliHarness.Results(Path.Combine(dir.File("out"), "cascade"));
            var answeredBy = results.GroupBy(r => (string?)r["answered_by"] ?? "?").ToDictionary(g => g.Key, g => g.Count());
            output.WriteLine($"zoo:mixed, 30 items: arith (local) {Score("arith"):F3}, facts_b (served) {Score("facts_b"):F3}, cascade {Score("cascade"):F3}; answered by {string.Join(", ", answeredBy.Select(kv => $"{kv.Key} {kv.Value}"))}");
            Assert.True(answeredBy.GetValueOrDefault("arith") > 0 && answeredBy.GetValueOrDefault("facts_b") > 0, string.Join(", ", answeredBy));
            // The served member's calls went through the endpoint: its trace entries carry its name and its tokens.
            Assert.Contains(results, r => r["trace"]!.AsArray().Any(t => (string?)t!["model"] == "facts_b" && (long?)t["output_tokens"] > 0));
            Assert.True(Score("cascade") > Math.Max(Score("arith"), Score("facts_b")) + 0.1, $"cascade {Score("cascade")} vs arith {Score("arith")}, facts_b {Score("facts_b")}");
            // Two stages are one threshold: the router evaluation sweeps it from the members' baseline outputs.
            Assert.Contains("cascade: router curve (strong = facts_b", stdout);
            var routing = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.File("out"), "cascade", "summary.json")))!["routing"]!;
            output.WriteLine($"cascade curve: APGR {(double?)routing["apgr"]}, CPT(50%) {(double?)routing["cpt"]!["50"]}");
            Assert.NotNull((double?)routing["apgr"]);
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
        }
    }
}
