using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Consort.Testing;

namespace Consort.Cli.Tests;

/// <summary>A run over an OpenAI-compatible endpoint (a real `consort serve` process) that dies mid-run resumes later.</summary>
public class RemoteRunTests
{
    /// <summary>The serve-and-wait helper, now in <see cref="CliHarness.StartServerAsync"/> (kept for callers of this name).</summary>
    internal static Task<Process> StartServerAsync(string config, int port) => CliHarness.StartServerAsync(config, port);

    [Fact]
    public async Task RunOverAnEndpointThatDiesMidRunResumesWithoutLosingItems()
    {
        using var dir = new TempDir();
        CliHarness.WriteStoryDataset(dir.Path, 60);
        int port = TestNet.FreePort();
        var serve = dir.File("serve.json");
        File.WriteAllText(serve, $$"""{ "models": [ { "name": "s", "path": "{{TestPaths.Stories260K}}", "context_size": 512 } ] }""");
        var run = dir.File("run.json");
        File.WriteAllText(run, $$"""
            { "method": "single_model", "task": { "dataset": "stories", "max_tokens": 60 }, "concurrency": 1,
              "models": [ { "name": "remote", "type": "openai", "base_url": "http://127.0.0.1:{{port}}/v1", "model": "s",
                            "top_logprobs": 0, "timeout_s": 30, "max_retries": 1, "backoff_base_ms": 20 } ] }
            """);
        var outDir = dir.File("out");
        var results = Path.Combine(outDir, "remote", "results.jsonl");

        var server = await CliHarness.StartServerAsync(serve, port);
        try
        {
            using var client = Process.Start(CliHarness.StartInfo("run", run, "--out", outDir))!;
            var stdout = client.StandardOutput.ReadToEndAsync();
            var stderr = client.StandardError.ReadToEndAsync();
            var sw = Stopwatch.StartNew();
            while (sw.Elapsed < TimeSpan.FromSeconds(90) && !client.HasExited && (!File.Exists(results) || File.ReadAllLines(results).Length < 3))
                await Task.Delay(10);
            server.Kill(entireProcessTree: true); // the endpoint dies mid-run
            await server.WaitForExitAsync();
            using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            await client.WaitForExitAsync(limit.Token);
            await stdout; await stderr;
        }
        finally
        {
            if (!server.HasExited) server.Kill(true);
        }
        var first = CliHarness.Results(Path.Combine(outDir, "remote"));
        int ok = first.Count(r => r["error"] is null);
        Assert.InRange(ok, 3, 59); // some answered before the endpoint died, the rest failed
        Assert.Contains(first, r => r["error"] is not null);

        server = await CliHarness.StartServerAsync(serve, port);
        try
        {
            var (code, o, e) = await CliHarness.RunAsync("run", run, "--out", outDir);
            Assert.True(code == 0, e + o);
        }
        finally { server.Kill(true); await server.WaitForExitAsync(); }

        var final = CliHarness.Results(Path.Combine(outDir, "remote"));
        Assert.Equal(60, final.Count);
        Assert.Equal(60, final.Select(r => r["id"]!.ToString()).Distinct().Count());
        Assert.All(final, r => Assert.Null(r["error"]));
        // Items answered before the endpoint died were kept, not asked again.
        foreach (var r in first.Where(r => r["error"] is null))
            Assert.Equal(r["output"]!.ToString(), final.Single(f => f["id"]!.ToString() == r["id"]!.ToString())["output"]!.ToString());
    }

    [Fact]
    public async Task ACollaborationServedByAnotherConsortServerIsAMemberOfALocalCollaboration()
    {
        using var dir = new TempDir();
        CliHarness.WriteStoryDataset(dir.Path, 4);
        int port = TestNet.FreePort();
        var serve = dir.File("serve.json");
        File.WriteAllText(serve, $$"""
            { "models": [ { "name": "s", "path": "{{TestPaths.Stories260K}}", "context_size": 512 }, { "name": "x", "path": "{{TestPaths.Llama2Xs}}", "context_size": 256 } ],
              "collaborations": { "fusion": { "method": "logit_fusion", "models": ["s", "x"] } } }
            """);
        var run = dir.File("run.json");
        File.WriteAllText(run, $$"""
            { "method": "majority_vote", "task": { "dataset": "stories", "max_tokens": 12 }, "hyperparameters": { "samples": 1, "temperature": 0 },
              "models": [ { "name": "remote_fusion", "type": "openai", "base_url": "http://127.0.0.1:{{port}}/v1", "model": "fusion", "top_logprobs": 0 },
                          "{{TestPaths.Stories260K}}" ] }
            """);
        var server = await CliHarness.StartServerAsync(serve, port);
        try
        {
            var (code, o, e) = await CliHarness.RunAsync("run", run, "--out", dir.File("out"));
            Assert.True(code == 0, e + o);
        }
        finally { server.Kill(true); await server.WaitForExitAsync(); }
        var results = CliHarness.Results(Path.Combine(dir.File("out"), "run"));
        Assert.Equal(4, results.Count);
        Assert.All(results, r =>
        {
            Assert.Null(r["error"]);
            var models = r["trace"]!.AsArray().Select(t => t!["Model"]?.ToString() ?? t!["model"]?.ToString()).ToList();
            Assert.Contains("remote_fusion", models);
            Assert.Contains("stories260K", models);
        });
    }
}
