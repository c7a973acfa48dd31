using System.Text.Json.Nodes;
using Consort.Cli.Commands;
using Consort.Config;
using Consort.Testing;

namespace Consort.Server.Tests;

/// <summary>Gateway keys in serve and run configs, on the real tiny models: replicas, context-window fallbacks, a member's fallback inside a method.</summary>
public sealed class GatewayConfigTests
{
    private static JsonObject Chat(string model, string text, int maxTokens = 8, bool stream = false) => new()
    {
        ["model"] = model, ["max_tokens"] = maxTokens, ["temperature"] = 0, ["stream"] = stream,
        ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = text }),
    };

    private static async Task<ServeConfig> Load(TempDir dir, string json)
    {
        File.WriteAllText(dir.File("serve.json"), json);
        return await ServeConfig.LoadAsync(dir.File("serve.json"), "http://127.0.0.1:0", null, default);
    }

    [Fact]
    public async Task Local_replicas_behind_one_name_share_the_load()
    {
        using var dir = new TempDir();
        await using var loaded = await Load(dir, $$"""
            {"models":[{"name":"story","routing":"least_busy","deployments":[
                {"path":"{{TestPaths.Stories260K}}","context_size":256},
                {"path":"{{TestPaths.Stories260K}}","context_size":256,"weight":2}]}]}
            """);
        await using var s = await RunningServer.StartAsync(loaded.Models);
        var answers = await Task.WhenAll(Enumerable.Range(0, 12).Select(_ => s.PostAsync("/v1/chat/completions", Chat("story", "Once upon a time"))));
        Assert.All(answers, a => Assert.Equal(200, a.Status));
        Assert.Single(answers.Select(a => a.Json!["choices"]![0]!["message"]!["content"]!.GetValue<string>()).Distinct()); // same weights, greedy
        var d = JsonNode.Parse(await s.Http.GetStringAsync("/v1/models/story"))!["consort"]!["deployments"]!.AsArray();
        Assert.Equal(2, d.Count);
        string metrics = await new HttpClient().GetStringAsync(s.Url + "/metrics");
        foreach (var name in d.Select(x => x!["name"]!.GetValue<string>()))
            Assert.Contains($"deployment=\"{name}\",model=\"story\",outcome=\"ok\"", metrics);
    }

    [Fact]
    public async Task A_prompt_too_long_for_the_model_goes_to_its_context_window_fallback()
    {
        using var dir = new TempDir();
        string json = $$"""
            {"models":[
               {"name":"big","path":"{{TestPaths.Stories260K}}","context_size":512},
               {"name":"small","path":"{{TestPaths.Stories260K}}","context_size":64,"max_sequences":1,"context_window_fallbacks":["big"]},
               {"name":"alone","path":"{{TestPaths.Stories260K}}","context_size":64,"max_sequences":1}]}
            """;
        await using var loaded = await Load(dir, json);
        await using var s = await RunningServer.StartAsync(loaded.Models);
        string longPrompt = string.Concat(Enumerable.Repeat("Once upon a time there was a girl. ", 12));
        var (status, body) = await s.PostAsync("/v1/chat/completions", Chat("small", longPrompt));
        Assert.Equal(200, status);
        var (direct, _) = await s.PostAsync("/v1/chat/completions", Chat("big", longPrompt));
        Assert.Equal(200, direct);
        var (st2, err) = await s.PostAsync("/v1/chat/completions", Chat("alone", longPrompt));
        Assert.Equal(400, st2);
        OpenAISurfaceTests.AssertOpenAIError(err, code: "context_length_exceeded");
        Assert.Equal(200, (await s.PostAsync("/v1/chat/completions", Chat("small", "Once upon a time"))).Status);
    }

    [Fact]
    public async Task A_collaboration_member_that_is_down_is_replaced_by_its_fallback_inside_the_method()
    {
        using var dir = new TempDir();
        int dead = TestNet.FreePort();
        await using var loaded = await Load(dir, $$"""
            {"models":[
               {"name":"s1","path":"{{TestPaths.Stories260K}}"},
               {"name":"s2","path":"{{TestPaths.Stories260K}}","seed":2},
               {"name":"gone","type":"openai","base_url":"http://127.0.0.1:{{dead}}/v1","model":"m","top_logprobs":0,"max_retries":0,"fallbacks":["s1"]}],
             "collaborations":{"vote":{"method":"majority_vote","models":["gone","s1","s2"] } } }
            """);
        await using var s = await RunningServer.StartAsync(loaded.Models);
        var req = Chat("vote", "Once upon a time");
        req["consort_trace"] = true;
        var (status, json) = await s.PostAsync("/v1/chat/completions", req);
        Assert.Equal(200, status);
        var trace = json!["consort_trace"]!.AsArray();
        var gone = trace.First(t => t!["model"]!.GetValue<string>() == "gone")!;
        Assert.False(string.IsNullOrEmpty(gone["output"]!.GetValue<string>())); // answered by s1 in its place
        string metrics = await new HttpClient().GetStringAsync(s.Url + "/metrics");
        Assert.Contains("consort_gateway_fallbacks_total{otel_scope_name=\"Consort.Gateway\",fallback=\"s1\",model=\"gone\",reason=\"error\"}", metrics);
    }

    [Fact]
    public void Gateway_keys_are_validated_before_anything_loads_in_serve_and_run_configs()
    {
        using var dir = new TempDir();
        string m = TestPaths.Stories260K;
        foreach (var (json, expect) in new[]
        {
            ($$"""{"models":[{"name":"a","path":"{{m}}","fallbacks":["nope"]}]}""", "fallback 'nope'"),
            ($$"""{"models":[{"name":"a","path":"{{m}}","fallbacks":["b"]},{"name":"b","path":"{{m}}","fallbacks":["a"]}]}""", "cycle"),
            ($$"""{"models":[{"name":"a","routing":"fastest","deployments":["{{m}}"]}]}""", "routing 'fastest'"),
            ($$"""{"models":[{"deployments":["{{m}}"]}]}""", "needs a 'name'"),
            ($$"""{"models":[{"name":"a","deployments":[]}]}""", "non-empty"),
            ($$"""{"models":[{"name":"a","path":"{{m}}","cooldown_s":-1}]}""", "'cooldown_s'"),
            ($$"""{"models":[{"name":"a","deployments":["{{m}}"],"colour":1}]}""", "'colour'"),
        })
        {
            File.WriteAllText(dir.File("bad.json"), json);
            var e = Assert.ThrowsAsync<ConfigException>(() => ServeConfig.LoadAsync(dir.File("bad.json"), null, null, default)).GetAwaiter().GetResult();
            Assert.Contains(expect, e.Message);
        }
        // A run config: a member with deployments and a fallback is one model of the method.
        var run = RunConfig.Parse(JsonNode.Parse($$"""
            {"task":"zoo:mixed","method":"majority_vote","models":[
               {"name":"a","deployments":["zoo:arith","zoo:arith"],"fallbacks":["b"]},{"name":"b","path":"zoo:facts_a"},{"name":"c","path":"zoo:facts_b"}]}
            """)!.AsObject(), dir.Path);
        var member = Assert.IsType<GatewaySpec>(run.Models[0]);
        Assert.Equal(2, member.Deployments.Count);
        Assert.Same(run.Models[1], member.Fallbacks.Single());
    }

    [Fact]
    public async Task A_run_config_serves_its_models_and_runs_with_a_note_about_the_task()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("run.json"), """
            {"task": "zoo:mixed", "baselines": true, "models": [{"name": "arith", "path": "zoo:arith"}, {"name": "facts_a", "path": "zoo:facts_a"}],
             "runs": [{"name": "vote", "method": "majority_vote"}], "server": {"max_tokens": 64}}
            """);
        var notes = new List<string>();
        await using var loaded = await ServeConfig.LoadAsync(dir.File("run.json"), "http://127.0.0.1:0", notes.Add, default);
        Assert.Equal(["arith", "facts_a", "vote"], loaded.Models.Select(x => x.Name));
        Assert.Equal(64, loaded.Options.MaxTokens);
        await using var s = await RunningServer.StartAsync(loaded.Models);
        Assert.Equal(200, (await s.PostAsync("/v1/chat/completions", Chat("vote", "12+7="))).Status);
        // The task is not evaluated; its dev split is what methods that fit on dev fit on (zoo:mixed has 120 dev examples).
        Assert.Contains(notes, n => n.Contains("dev split (120 examples)") && n.Contains("not evaluated"));
    }

    [Fact]
    public async Task A_run_config_whose_dataset_is_not_here_still_serves_with_a_note()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("run.json"), """
            {"task": {"dataset": "not-here.json", "prompt": "{input}"}, "models": [{"name": "arith", "path": "zoo:arith"}, {"name": "facts_a", "path": "zoo:facts_a"}],
             "runs": [{"name": "vote", "method": "majority_vote"}]}
            """);
        var notes = new List<string>();
        await using var loaded = await ServeConfig.LoadAsync(dir.File("run.json"), "http://127.0.0.1:0", notes.Add, default);
        Assert.Equal(["arith", "facts_a", "vote"], loaded.Models.Select(x => x.Name));
        Assert.Contains(notes, n => n.Contains("the task's dataset could not be read") && n.Contains("not-here.json"));
    }

    [Fact]
    public async Task The_gateway_examples_load()
    {
        string examples = Path.Combine(TestPaths.RepoRoot, "examples");
        await using (var g = await ServeConfig.LoadAsync(Path.Combine(examples, "gateway.json"), "http://127.0.0.1:0", null, default))
        {
            Assert.Equal(["local", "story", "short-context", "vote"], g.Models.Select(m => m.Name));
            Assert.Equal(30, g.Options.ShutdownTimeout.TotalSeconds);
        }
        // The replica example keeps its call cache in Redis at the default port, connected before its models load:
        // a real redis-server answers there (started here unless one already listens).
        using var redis = Listening(6379) ? null : await RedisProcess.StartAsync(6379);
        await using (var r = await ServeConfig.LoadAsync(Path.Combine(examples, "gateway-replica.json"), "http://127.0.0.1:0", null, default))
        {
            Assert.Equal("127.0.0.1:6379", r.Options.Redis);
            Assert.Equal(["stories260k"], r.Embedders.Keys);
            foreach (var v in new[] { "CONSORT_KEY_WEB", "CONSORT_KEY_BATCH", "CONSORT_KEY_OPS" }) Environment.SetEnvironmentVariable(v, "example-" + v);
            try
            {
                var ring = Consort.Server.Keys.ApiKeyRing.Load(r.Options);
                Assert.Equal(["web-app", "batch", "ops"], ring.Keys.Select(k => k.Name));
                Assert.Equal(600, ring.Find("example-CONSORT_KEY_WEB")!.Limits.RequestsPerMinute);
            }
            finally
            {
                foreach (var v in new[] { "CONSORT_KEY_WEB", "CONSORT_KEY_BATCH", "CONSORT_KEY_OPS" }) Environment.SetEnvironmentVariable(v, null);
            }
        }
    }

    private static bool Listening(int port)
    {
        try
        {
            using var c = new System.Net.Sockets.TcpClient();
            c.Connect("127.0.0.1", port);
            return true;
        }
        catch (System.Net.Sockets.SocketException) { return false; }
    }
}
