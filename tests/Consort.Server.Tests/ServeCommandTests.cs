using System.Text.Json.Nodes;
using Consort.Cli.Commands;
using Consort.Testing;

namespace Consort.Server.Tests;

/// <summary>Serve config loading and the serve benchmark, on the real tiny models.</summary>
public sealed class ServeCommandTests
{
    private static string Write(TempDir dir, string json)
    {
        File.WriteAllText(dir.File("serve.json"), json);
        return dir.File("serve.json");
    }

    [Fact]
    public async Task Serve_config_errors_name_the_problem()
    {
        using var dir = new TempDir();
        var e1 = await Assert.ThrowsAsync<ConfigException>(() => ServeConfig.LoadAsync(Write(dir, """{"models":[],"sever":{}}"""), null, null, default));
        Assert.Contains("'sever'", e1.Message);
        Assert.Contains("server", e1.Message);
        var e2 = await Assert.ThrowsAsync<ConfigException>(() => ServeConfig.LoadAsync(Write(dir, $$$"""{"models":["{{{TestPaths.Stories260K}}}"],"server":{"max_tokenz":5}}"""), null, null, default));
        Assert.Contains("'max_tokenz'", e2.Message);
        var e3 = await Assert.ThrowsAsync<ConfigException>(() => ServeConfig.LoadAsync(Write(dir, """{"models":[{"name":"x","path":"missing.gguf"}]}"""), null, null, default));
        Assert.Contains("missing.gguf", e3.Message);
        var e4 = await Assert.ThrowsAsync<ConfigException>(() => ServeConfig.LoadAsync(Write(dir, """{"models":[]}"""), null, null, default));
        Assert.Contains("nothing to serve", e4.Message);
        var e5 = await Assert.ThrowsAsync<ConfigException>(() => ServeConfig.LoadAsync(Write(dir,
            $$$"""{"models":[{"name":"a","path":"{{{TestPaths.Stories260K}}}"},{"name":"b","path":"{{{TestPaths.TinyStories656K}}}"}],"collaborations":{"f":{"method":"logit_fusion","models":["a","b"] } } }"""), null, null, default));
        Assert.Contains("vocabular", e5.Message, StringComparison.OrdinalIgnoreCase);
        var e6 = await Assert.ThrowsAsync<ConfigException>(() => ServeConfig.LoadAsync(dir.File("absent.json"), null, null, default));
        Assert.Contains("absent.json", e6.Message);
    }

    [Fact]
    public async Task Serve_config_builds_models_collaborations_and_server_options()
    {
        using var dir = new TempDir();
        string path = Write(dir, $$$"""
            {"models":[{"name":"s","path":"{{{TestPaths.Stories260K}}}"},{"name":"x","path":"{{{TestPaths.Llama2Xs}}}"}],
             "collaborations":{"fused":{"method":"logit_fusion","models":["s","x"]}},
             "server":{"urls":"http://127.0.0.1:9","max_tokens":99,"request_timeout_s":7}}
            """);
        await using var loaded = await ServeConfig.LoadAsync(path, "http://127.0.0.1:0", null, default);
        Assert.Equal(["s", "x", "fused"], loaded.Models.Select(m => m.Name));
        Assert.Equal("logit_fusion", loaded.Models[2].Method);
        Assert.Equal("http://127.0.0.1:0", loaded.Options.Urls);
        Assert.Equal(99, loaded.Options.MaxTokens);
        Assert.Equal(TimeSpan.FromSeconds(7), loaded.Options.RequestTimeout);
    }

    [Fact]
    public async Task Serve_benchmark_runs_bounded_and_reports_all_paths()
    {
        var r = await BenchServeCommand.RunAsync(TestPaths.Stories260K, tokens: 4, requests: 5, loadRequests: 16, default);
        Assert.Equal(3, r["latency"]!.AsArray().Count);
        Assert.All(r["latency"]!.AsArray(), row => Assert.True(row!["p50_ms"]!.GetValue<double>() > 0));
        Assert.Equal([1, 4, 16], r["throughput"]!.AsArray().Select(t => t!["clients"]!.GetValue<int>()));
        Assert.All(r["throughput"]!.AsArray(), t => Assert.True(t!["requests_per_second"]!.GetValue<double>() > 0));
        Assert.StartsWith(",", r["completion"]!.GetValue<string>());
    }

    [Fact]
    public async Task Load_benchmark_answers_every_request_of_a_burst_without_429()
    {
        // The burst of the issue: 200 requests from 32 clients against the example fusion, default queue settings.
        var r = await BenchServeLoad.RunAsync(Path.Combine(TestPaths.RepoRoot, "examples", "serve.json"), null, requests: 200, clients: 32, maxTokens: 8, streamShare: 0.25, default);
        Assert.Equal("fusion", r["model"]!.GetValue<string>());
        Assert.Equal(200, r["ok"]!.GetValue<int>());
        Assert.Equal(0, r["status_429"]!.GetValue<int>());
        Assert.Equal(0, r["status_5xx"]!.GetValue<int>());
        Assert.Equal(0, r["lost"]!.GetValue<int>());
        Assert.True(r["all_answered"]!.GetValue<bool>());
        Assert.True(r["p99_ms"]!.GetValue<double>() >= r["p50_ms"]!.GetValue<double>());
    }
}
