using System.Text;
using System.Text.Json.Nodes;
using Consort.Testing;

namespace Consort.Cli.Tests;

/// <summary>
/// A text method whose members are partly local and partly served by another <c>consort serve</c> (OpenAI backend, real
/// HTTP on loopback): mixture_of_agents on zoo:mixed with zoo:facts_a remote answers every item exactly as the all-local
/// run does (greedy), and the remote member's calls are in the trace under its own name. And a MoA configured as a
/// collaboration of <c>consort serve</c> streams its aggregator's pieces as SSE chunks.
/// </summary>
public class TextMethodsRemoteMemberTests
{
    [Fact]
    public async Task Mixture_of_agents_with_one_member_served_by_consort_serve_answers_as_the_all_local_run()
    {
        using var dir = new TempDir();
        int port = TestNet.FreePort();
        var serve = dir.File("serve.json");
        File.WriteAllText(serve, """{ "models": [ { "name": "facts_a", "path": "zoo:facts_a" } ] }""");
        var prompts = Path.Combine(TestPaths.RepoRoot, "examples", "prompts", "zoo.json").Replace("\\", "/");
        string Config(string factsA) => $$"""
            { "task": { "dataset": "zoo:mixed", "prompt": "{input}", "max_tokens": 16, "stop": ["\n"] }, "concurrency": 2,
              "models": [ { "name": "arith", "path": "zoo:arith" }, {{factsA}}, { "name": "facts_b", "path": "zoo:facts_b" } ],
              "runs": [ { "name": "moa", "method": "mixture_of_agents", "hyperparameters": { "layers": 2, "aggregator": "facts_a", "prompts_file": "{{prompts}}" } } ] }
            """;
        var remote = dir.File("remote.json");
        File.WriteAllText(remote, Config($$"""{ "name": "facts_a", "type": "openai", "base_url": "http://127.0.0.1:{{port}}/v1", "model": "facts_a", "top_logprobs": 0, "timeout_s": 60 }"""));
        var local = dir.File("local.json");
        File.WriteAllText(local, Config("""{ "name": "facts_a", "path": "zoo:facts_a" }"""));

        var server = await RemoteRunTests.StartServerAsync(serve, port);
        try
        {
            var (code, o, e) = await CliHarness.RunAsync("run", remote, "--out", dir.File("remote"), "--limit", "6", "--no-report");
            Assert.True(code == 0, e + o);
            // The remote member's calls reached the server: 6 items x (2 proposals + the aggregation), none refused.
            using var http = new HttpClient();
            var metrics = await http.GetStringAsync($"http://127.0.0.1:{port}/metrics");
            var answered = metrics.Split('\n').Where(l => l.StartsWith("consort_server_requests") && l.Contains("facts_a") && l.Contains("\"200\""))
                .Sum(l => double.Parse(l.Split(' ')[^1], System.Globalization.CultureInfo.InvariantCulture));
            Assert.True(answered >= 18, metrics);
        }
        finally { server.Kill(true); await server.WaitForExitAsync(); }
        var (lcode, lo, le) = await CliHarness.RunAsync("run", local, "--out", dir.File("local"), "--limit", "6", "--no-report");
        Assert.True(lcode == 0, le + lo);

        var remoteResults = CliHarness.Results(Path.Combine(dir.File("remote"), "moa"));
        var localResults = CliHarness.Results(Path.Combine(dir.File("local"), "moa"));
        Assert.Equal(6, remoteResults.Count);
        foreach (var r in remoteResults)
        {
            Assert.Null(r["error"]);
            var l = localResults.Single(x => x["id"]!.ToString() == r["id"]!.ToString());
            Assert.Equal(l["output"]!.ToString(), r["output"]!.ToString());
            var trace = r["trace"]!.AsArray().Select(t => t!.AsObject()).ToList();
            // The remote member proposed in both layers and aggregated; the local ones proposed.
            Assert.Equal(3, trace.Count(t => t["model"]!.ToString() == "facts_a"));
            Assert.Equal(2, trace.Count(t => t["model"]!.ToString() == "arith"));
            Assert.Contains(trace, t => t["model"]!.ToString() == "facts_a" && t["role"]!.ToString() == "aggregate");
        }
        Assert.Equal(localResults.Select(x => x["score"]?.ToString()).OrderBy(x => x), remoteResults.Select(x => x["score"]?.ToString()).OrderBy(x => x));
    }

    [Fact]
    public async Task Consort_serve_streams_a_mixture_of_agents_of_the_team_models_as_sse_chunks()
    {
        using var dir = new TempDir();
        int port = TestNet.FreePort();
        var prompts = Path.Combine(TestPaths.RepoRoot, "examples", "prompts", "zoo_team.json").Replace("\\", "/");
        var serve = dir.File("serve.json");
        File.WriteAllText(serve, $$"""
            { "models": [ { "name": "team_arith", "path": "zoo:team_arith" }, { "name": "team_facts_a", "path": "zoo:team_facts_a" },
                          { "name": "team_facts_b", "path": "zoo:team_facts_b" }, { "name": "team_reader", "path": "zoo:team_reader" } ],
              "collaborations": { "moa": { "method": "mixture_of_agents", "models": ["team_arith", "team_facts_a", "team_facts_b", "team_reader"],
                "hyperparameters": { "layers": 2, "proposers": ["team_arith", "team_facts_a", "team_facts_b"], "aggregator": "team_reader", "prompts_file": "{{prompts}}" } } } }
            """);
        var server = await RemoteRunTests.StartServerAsync(serve, port);
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(120) };
            StringContent Body(bool stream) => new(new JsonObject
            {
                ["model"] = "moa", ["stream"] = stream, ["max_tokens"] = 8, ["temperature"] = 0, ["stop"] = new JsonArray("\n"),
                ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Q: 7+48= A:" }),
            }.ToJsonString(), Encoding.UTF8, "application/json");
            using var plain = await http.PostAsync("/v1/chat/completions", Body(false));
            var whole = JsonNode.Parse(await plain.Content.ReadAsStringAsync())!["choices"]![0]!["message"]!["content"]!.GetValue<string>();
            using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = Body(true) };
            using var resp = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal("text/event-stream", resp.Content.Headers.ContentType?.MediaType);
            using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync());
            var pieces = new List<string>();
            bool done = false;
            while (await reader.ReadLineAsync() is { } line)
            {
                if (line == "data: [DONE]") { done = true; break; }
                if (line.StartsWith("data: ") && JsonNode.Parse(line[6..])!["choices"]![0]!["delta"]!["content"]?.GetValue<string>() is { Length: > 0 } p) pieces.Add(p);
            }
            Assert.True(done);
            // The reader aggregates what the arithmetic expert proposed, byte by byte: several chunks, the non-streamed text.
            Assert.True(pieces.Count >= 2, string.Join("|", pieces));
            Assert.Equal(whole, string.Concat(pieces));
            Assert.Equal("55", whole.Trim());
        }
        finally { server.Kill(true); await server.WaitForExitAsync(); }
    }
}
