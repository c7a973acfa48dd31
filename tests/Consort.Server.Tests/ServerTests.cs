using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace Consort.Server.Tests;

/// <summary>Server orchestration with scripted chat clients (no model needed): routing, auth, limits, SSE, trace, 429, timeouts.</summary>
public sealed class ServerTests
{
    private static JsonObject Chat(string model, string text, int? maxTokens = null, bool stream = false)
    {
        var o = new JsonObject { ["model"] = model, ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = text }) };
        if (maxTokens is { } m) o["max_tokens"] = m;
        if (stream) o["stream"] = true;
        return o;
    }

    private static void AssertOpenAIError(JsonNode? json, string? param = null) => OpenAIErrors.Assert(json, param);

    [Fact]
    public async Task Lists_models_and_answers_health()
    {
        await using var s = await RunningServer.StartAsync([Fakes.Model("alpha"), Fakes.Model("beta")]);
        var list = JsonNode.Parse(await s.Http.GetStringAsync("/v1/models"))!;
        Assert.Equal("list", list["object"]!.GetValue<string>());
        Assert.Equal(["alpha", "beta"], list["data"]!.AsArray().Select(m => m!["id"]!.GetValue<string>()));
        var health = JsonNode.Parse(await new HttpClient().GetStringAsync(s.Url + "/health"))!;
        Assert.Equal("ok", health["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task Chat_non_stream_returns_text_and_usage()
    {
        await using var s = await RunningServer.StartAsync([Fakes.Model("alpha")]);
        var (status, json) = await s.PostAsync("/v1/chat/completions", Chat("alpha", "hello there"));
        Assert.Equal(200, status);
        Assert.Equal("chat.completion", json!["object"]!.GetValue<string>());
        Assert.Equal("alpha says: hello there", json["choices"]![0]!["message"]!["content"]!.GetValue<string>());
        Assert.Equal("stop", json["choices"]![0]!["finish_reason"]!.GetValue<string>());
        Assert.Equal(7, json["usage"]!["prompt_tokens"]!.GetValue<long>());
        Assert.Equal(4, json["usage"]!["completion_tokens"]!.GetValue<long>());
        Assert.Equal(11, json["usage"]!["total_tokens"]!.GetValue<long>());
        Assert.Null(json["consort_trace"]);
    }

    [Fact]
    public async Task Chat_stream_text_equals_non_stream_and_ends_with_done()
    {
        await using var s = await RunningServer.StartAsync([Fakes.Model("alpha")]);
        var (_, json) = await s.PostAsync("/v1/chat/completions", Chat("alpha", "one two three"));
        var events = await s.PostStreamAsync("/v1/chat/completions", Chat("alpha", "one two three", stream: true));
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e)!).ToList();
        Assert.All(chunks, c => Assert.Equal("chat.completion.chunk", c["object"]!.GetValue<string>()));
        string streamed = string.Concat(chunks.Select(c => c["choices"]![0]!["delta"]!["content"]?.GetValue<string>() ?? ""));
        Assert.Equal(json!["choices"]![0]!["message"]!["content"]!.GetValue<string>(), streamed);
        Assert.True(chunks.Count > 3, "streamed in several chunks");
        Assert.Equal("stop", chunks[^1]["choices"]![0]!["finish_reason"]!.GetValue<string>());
        Assert.Equal(7, chunks[^1]["usage"]!["prompt_tokens"]!.GetValue<long>());
    }

    [Fact]
    public async Task Wrong_or_missing_key_is_401_in_openai_shape()
    {
        await using var s = await RunningServer.StartAsync([Fakes.Model("alpha")]);
        using var wrong = new HttpClient { BaseAddress = new Uri(s.Url) };
        wrong.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "nope");
        var (status, json) = await s.PostAsync("/v1/chat/completions", Chat("alpha", "x"), wrong);
        Assert.Equal(401, status);
        AssertOpenAIError(json);
        Assert.Equal("invalid_api_key", json!["error"]!["code"]!.GetValue<string>());
        using var none = new HttpClient { BaseAddress = new Uri(s.Url) };
        Assert.Equal(HttpStatusCode.Unauthorized, (await none.GetAsync("/v1/models")).StatusCode);
        // Health stays open for probes.
        Assert.Equal(HttpStatusCode.OK, (await none.GetAsync("/health")).StatusCode);
    }

    [Fact]
    public async Task Keys_file_and_open_server()
    {
        using var dir = new Consort.Testing.TempDir();
        File.WriteAllLines(dir.File("keys.txt"), ["# comment", "", "file-key"]);
        var o = new ServerOptions { ApiKeysFile = dir.File("keys.txt"), ReadKeysFromEnvironment = false };
        Assert.Equal(["file-key"], o.LoadKeys());
        await using var open = await RunningServer.StartAsync([Fakes.Model("alpha")], key: null);
        var (status, _) = await open.PostAsync("/v1/chat/completions", Chat("alpha", "x"));
        Assert.Equal(200, status);
    }

    [Fact]
    public async Task Limits_answer_400_in_openai_shape()
    {
        await using var s = await RunningServer.StartAsync([Fakes.Model("alpha")], new ServerOptions { MaxTokens = 64, MaxMessages = 2, MaxBodyBytes = 4096 });
        var (st1, j1) = await s.PostAsync("/v1/chat/completions", Chat("alpha", "x", maxTokens: 100000));
        Assert.Equal(400, st1);
        AssertOpenAIError(j1, "max_tokens");
        Assert.Contains("64", j1!["error"]!["message"]!.GetValue<string>());

        var many = Chat("alpha", "x");
        for (int i = 0; i < 3; i++) many["messages"]!.AsArray().Add(new JsonObject { ["role"] = "user", ["content"] = "more" });
        var (st2, j2) = await s.PostAsync("/v1/chat/completions", many);
        Assert.Equal(400, st2);
        AssertOpenAIError(j2, "messages");

        var (st3, j3) = await s.PostAsync("/v1/chat/completions", Chat("alpha", new string('x', 10000)));
        Assert.Equal(400, st3);
        AssertOpenAIError(j3);
        Assert.Contains("4096", j3!["error"]!["message"]!.GetValue<string>());

        using var bad = await s.Http.PostAsync("/v1/chat/completions", new StringContent("{not json", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        AssertOpenAIError(JsonNode.Parse(await bad.Content.ReadAsStringAsync()));

        var (st4, j4) = await s.PostAsync("/v1/chat/completions", new JsonObject { ["model"] = "alpha", ["messages"] = new JsonArray(new JsonObject { ["role"] = "wizard", ["content"] = "x" }) });
        Assert.Equal(400, st4);
        AssertOpenAIError(j4, "messages[0].role");

        var (st5, j5) = await s.PostAsync("/v1/chat/completions", new JsonObject { ["model"] = "alpha", ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "x" }), ["temperature"] = "hot" });
        Assert.Equal(400, st5);
        AssertOpenAIError(j5, "temperature");
    }

    [Fact]
    public async Task Unknown_model_is_404()
    {
        await using var s = await RunningServer.StartAsync([Fakes.Model("alpha")]);
        var (status, json) = await s.PostAsync("/v1/chat/completions", Chat("gamma", "x"));
        Assert.Equal(404, status);
        AssertOpenAIError(json, "model");
        Assert.Equal("model_not_found", json!["error"]!["code"]!.GetValue<string>());
        Assert.Contains("alpha", json["error"]!["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task Completions_on_text_only_model_work_without_logprobs_and_refuse_logprobs()
    {
        await using var s = await RunningServer.StartAsync([Fakes.Model("alpha")]);
        var (st, j) = await s.PostAsync("/v1/completions", new JsonObject { ["model"] = "alpha", ["prompt"] = "Once upon", ["max_tokens"] = 10 });
        Assert.Equal(200, st);
        Assert.Equal("alpha says: Once upon", j!["choices"]![0]!["text"]!.GetValue<string>());
        Assert.Equal("text_completion", j["object"]!.GetValue<string>());
        var (st2, j2) = await s.PostAsync("/v1/completions", new JsonObject { ["model"] = "alpha", ["prompt"] = "x", ["logprobs"] = 2 });
        Assert.Equal(400, st2);
        AssertOpenAIError(j2, "logprobs");
    }

    [Fact]
    public async Task Requests_beyond_the_slots_wait_in_the_queue_and_a_full_queue_answers_429_with_retry_after()
    {
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var slow = new FakeChatClient("slow") { Before = async ct => { entered.TrySetResult(); await release.Task.WaitAsync(ct); } };
        await using var s = await RunningServer.StartAsync([Fakes.Model("slow", slow)], new ServerOptions { MaxConcurrentRequests = 1, MaxQueue = 1 });
        var first = s.PostAsync("/v1/chat/completions", Chat("slow", "a"));
        await entered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var queued = s.PostAsync("/v1/chat/completions", Chat("slow", "b"));
        for (int i = 0; i < 100 && JsonNode.Parse(await s.Http.GetStringAsync("/health"))!["queued"]!.GetValue<int>() == 0; i++) await Task.Delay(20);
        using var third = await s.Http.PostAsync("/v1/chat/completions", new StringContent(Chat("slow", "c").ToJsonString(), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.TooManyRequests, third.StatusCode);
        Assert.NotNull(third.Headers.RetryAfter);
        var json = JsonNode.Parse(await third.Content.ReadAsStringAsync());
        AssertOpenAIError(json);
        Assert.Equal("queue_full", json!["error"]!["code"]!.GetValue<string>());
        release.SetResult();
        Assert.Equal(200, (await first).Status);
        Assert.Equal(200, (await queued).Status); // waited instead of being refused
        Assert.Equal(200, (await s.PostAsync("/v1/chat/completions", Chat("slow", "d"))).Status);
    }

    [Fact]
    public async Task A_queue_wait_past_the_timeout_answers_503_with_retry_after()
    {
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var slow = new FakeChatClient("slow") { Before = async ct => { entered.TrySetResult(); await release.Task.WaitAsync(ct); } };
        await using var s = await RunningServer.StartAsync([Fakes.Model("slow", slow)], new ServerOptions { MaxConcurrentRequests = 1, QueueTimeout = TimeSpan.FromMilliseconds(300) });
        var first = s.PostAsync("/v1/chat/completions", Chat("slow", "a"));
        await entered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        using var late = await s.Http.PostAsync("/v1/chat/completions", new StringContent(Chat("slow", "b").ToJsonString(), Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, late.StatusCode);
        Assert.NotNull(late.Headers.RetryAfter);
        Assert.Equal("queue_timeout", JsonNode.Parse(await late.Content.ReadAsStringAsync())!["error"]!["code"]!.GetValue<string>());
        release.SetResult();
        Assert.Equal(200, (await first).Status);
    }

    [Fact]
    public async Task A_burst_of_200_requests_from_32_clients_gets_no_429_with_default_settings()
    {
        var model = Fakes.Model("busy", new FakeChatClient("busy") { WordDelay = TimeSpan.FromMilliseconds(5) });
        await using var s = await RunningServer.StartAsync([model], new ServerOptions()); // defaults: 8 slots, queue 1024
        int next = 0;
        var statuses = new System.Collections.Concurrent.ConcurrentBag<int>();
        await Task.WhenAll(Enumerable.Range(0, 32).Select(async _ =>
        {
            while (Interlocked.Increment(ref next) <= 200) statuses.Add((await s.PostAsync("/v1/chat/completions", Chat("busy", "x"))).Status);
        }));
        Assert.Equal(200, statuses.Count);
        Assert.All(statuses, st => Assert.Equal(200, st));
    }

    [Fact]
    public async Task Request_timeout_cancels_inner_call_and_answers_504()
    {
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var hang = new FakeChatClient("hang") { Before = async ct => { using var reg = ct.Register(() => cancelled.TrySetResult()); await Task.Delay(Timeout.Infinite, ct); } };
        await using var s = await RunningServer.StartAsync([Fakes.Model("hang", hang)], new ServerOptions { RequestTimeout = TimeSpan.FromMilliseconds(300) });
        var (status, json) = await s.PostAsync("/v1/chat/completions", Chat("hang", "a"));
        Assert.Equal(504, status);
        AssertOpenAIError(json);
        await cancelled.Task.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Client_disconnect_cancels_the_inner_call()
    {
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var hang = new FakeChatClient("hang") { Before = async ct => { using var reg = ct.Register(() => cancelled.TrySetResult()); entered.TrySetResult(); await Task.Delay(Timeout.Infinite, ct); } };
        await using var s = await RunningServer.StartAsync([Fakes.Model("hang", hang)]);
        using var cts = new CancellationTokenSource();
        var call = s.Http.PostAsync("/v1/chat/completions", new StringContent(Chat("hang", "a").ToJsonString(), Encoding.UTF8, "application/json"), cts.Token);
        await entered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
        await cancelled.Task.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Collaboration_trace_is_returned_when_asked()
    {
        var members = new[] { Fakes.Model("member-a"), Fakes.Model("member-b") };
        var collab = Fakes.Model("vote", new FakeChatClient("vote") { AttachTrace = true }, "majority_vote", members);
        await using var s = await RunningServer.StartAsync([collab, .. members]);
        var withField = Chat("vote", "q");
        withField["consort_trace"] = true;
        var (_, j1) = await s.PostAsync("/v1/chat/completions", withField);
        var trace = j1!["consort_trace"]!.AsArray();
        Assert.Equal(["member-a", "member-b"], trace.Select(t => t!["model"]!.GetValue<string>()));
        Assert.Equal("sample 1", trace[0]!["role"]!.GetValue<string>());
        Assert.Equal(7, j1["usage"]!["prompt_tokens"]!.GetValue<long>()); // usage = trace totals (3 + 4)

        using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(Chat("vote", "q").ToJsonString(), Encoding.UTF8, "application/json") };
        req.Headers.Add("X-Consort-Trace", "1");
        using var resp = await s.Http.SendAsync(req);
        Assert.Equal(2, JsonNode.Parse(await resp.Content.ReadAsStringAsync())!["consort_trace"]!.AsArray().Count);

        var (_, j3) = await s.PostAsync("/v1/chat/completions", Chat("vote", "q"));
        Assert.Null(j3!["consort_trace"]);
        var models = JsonNode.Parse(await s.Http.GetStringAsync("/v1/models"))!["data"]!.AsArray();
        Assert.Equal("majority_vote", models[0]!["consort"]!["method"]!.GetValue<string>());
    }

    [Fact]
    public async Task Chat_logprobs_are_returned_when_asked()
    {
        await using var s = await RunningServer.StartAsync([Fakes.Model("alpha")]);
        var body = Chat("alpha", "x");
        body["logprobs"] = true;
        var (_, j) = await s.PostAsync("/v1/chat/completions", body);
        var content = j!["choices"]![0]!["logprobs"]!["content"]!.AsArray();
        Assert.Equal([-0.5f, -0.25f], content.Select(c => c!["logprob"]!.GetValue<float>()));
    }

    [Fact]
    public void Bad_server_setup_is_a_config_error()
    {
        Assert.Throws<ConfigException>(() => ConsortServer.Build(new ServerOptions(), []));
        var e = Assert.Throws<ConfigException>(() => ConsortServer.Build(new ServerOptions(), [Fakes.Model("a"), Fakes.Model("a")]));
        Assert.Contains("'a'", e.Message);
        Assert.Throws<ConfigException>(() => ConsortServer.Build(new ServerOptions { ApiKeysFile = "/nonexistent/keys" }, [Fakes.Model("a")]));
        foreach (var bad in new[] { "foo", "http://127.0.0.1:99999", "ftp://127.0.0.1:80", "http://127.0.0.1", "http://127.0.0.1:80/path" })
            Assert.Contains("HOST:PORT", Assert.Throws<ConfigException>(() => ConsortServer.Build(new ServerOptions { Urls = bad }, [Fakes.Model("a")])).Message);
    }
}
