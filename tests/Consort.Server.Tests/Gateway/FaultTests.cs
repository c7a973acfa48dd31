using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Consort.Cli.Commands;
using Consort.Testing;
using Microsoft.AspNetCore.Http;

namespace Consort.Server.Tests;

/// <summary>
/// Faults with real processes on loopback: a deployment killed mid-run, SIGTERM with requests in flight, and a grep of
/// everything a server with keys writes. Loops are bounded by request counts and time limits.
/// </summary>
public sealed class FaultTests
{
    private static JsonObject Chat(string model, string text, int maxTokens = 8, bool stream = false) => new()
    {
        ["model"] = model, ["max_tokens"] = maxTokens, ["temperature"] = 0, ["stream"] = stream,
        ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = text }),
    };

    private static string StoriesConfig(TempDir dir, string name, string? server = null)
    {
        string path = dir.File(name + ".json");
        File.WriteAllText(path, $$"""{"models":[{"name":"stories","path":"{{TestPaths.Stories260K}}","max_sequences":8}]{{(server is null ? "" : ", \"server\": " + server)}}}""");
        return path;
    }

    [Fact]
    public async Task Two_consort_serve_deployments_one_killed_mid_run_every_request_answered_and_the_dead_one_cooled_down()
    {
        using var dir = new TempDir();
        await using var a = ServeProcess.Start(StoriesConfig(dir, "a"));
        await using var b = ServeProcess.Start(StoriesConfig(dir, "b"));
        await Task.WhenAll(a.WaitHealthyAsync(), b.WaitHealthyAsync());
        string gateway = dir.File("gateway.json");
        File.WriteAllText(gateway, $$"""
            {"models": [{"name": "story", "routing": "round_robin", "allowed_fails": 0, "cooldown_s": 600, "deployments": [
               {"name": "a", "type": "openai", "base_url": "{{a.Url}}/v1", "model": "stories", "top_logprobs": 0, "timeout_s": 20},
               {"name": "b", "type": "openai", "base_url": "{{b.Url}}/v1", "model": "stories", "top_logprobs": 0, "timeout_s": 20}]}]}
            """);
        await using var loaded = await ServeConfig.LoadAsync(gateway, "http://127.0.0.1:0", null, default);
        await using var s = await RunningServer.StartAsync(loaded.Models, new ServerOptions { MaxConcurrentRequests = 4 });
        const int total = 60;
        int next = 0, done = 0;
        var statuses = new System.Collections.Concurrent.ConcurrentBag<(int, string)>();
        var killed = new TaskCompletionSource();
        var work = Task.WhenAll(Enumerable.Range(0, 4).Select(async w =>
        {
            while (Interlocked.Increment(ref next) is var i && i <= total)
            {
                bool stream = i % 3 == 0;
                int status;
                string text;
                if (stream)
                {
                    var events = await s.PostStreamAsync("/v1/chat/completions", Chat("story", "Once upon a time", stream: true));
                    status = events[^1] == "[DONE]" && !events.Any(e => e.Contains("\"error\"")) ? 200 : 500;
                    text = string.Join("", events);
                }
                else
                {
                    var (st, json) = await s.PostAsync("/v1/chat/completions", Chat("story", "Once upon a time"));
                    status = st;
                    text = json?.ToJsonString() ?? "";
                }
                statuses.Add((status, text));
                if (Interlocked.Increment(ref done) == total / 4) { b.Kill(); killed.TrySetResult(); }
            }
        }));
        await work.WaitAsync(TimeSpan.FromMinutes(4));
        Assert.True(killed.Task.IsCompleted);
        Assert.Equal(total, statuses.Count);
        Assert.All(statuses, x => Assert.True(x.Item1 == 200, x.Item2));
        var model = JsonNode.Parse(await s.Http.GetStringAsync("/v1/models/story"))!;
        var deployments = model["consort"]!["deployments"]!.AsArray();
        Assert.False(deployments[0]!["cooling"]!.GetValue<bool>());
        Assert.True(deployments[1]!["cooling"]!.GetValue<bool>(), "the killed deployment is in cooldown");
        string metrics = await new HttpClient().GetStringAsync(s.Url + "/metrics");
        Assert.Matches("consort_gateway_deployment_cooling\\{[^}]*deployment=\"b\",model=\"story\"[^}]*\\} 1", metrics);
    }

    [Fact]
    public async Task Sigterm_finishes_in_flight_requests_and_ends_the_rest_with_an_error_event()
    {
        using var dir = new TempDir();
        // A slow upstream: one word every 150 ms, so an 80-word answer outlives the 6 s shutdown deadline and a 12-word one does not.
        await using var upstream = await StubServer.StartAsync(async (ctx, _) =>
        {
            var req = JsonNode.Parse((string)ctx.Items["body"]!)!;
            var words = Enumerable.Range(0, (req["max_completion_tokens"] ?? req["max_tokens"])!.GetValue<int>()).Select(i => "w" + i).ToArray();
            ctx.Response.ContentType = "text/event-stream";
            foreach (var w in words)
            {
                await Task.Delay(150, ctx.RequestAborted);
                await ctx.Response.WriteAsync("data: " + new JsonObject { ["id"] = "x", ["object"] = "chat.completion.chunk", ["created"] = 0, ["model"] = "m",
                    ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = new JsonObject { ["content"] = " " + w }, ["finish_reason"] = null }) }.ToJsonString() + "\n\n");
                await ctx.Response.Body.FlushAsync();
            }
            await ctx.Response.WriteAsync("data: " + new JsonObject { ["id"] = "x", ["object"] = "chat.completion.chunk", ["created"] = 0, ["model"] = "m",
                ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = new JsonObject(), ["finish_reason"] = "stop" }) }.ToJsonString() + "\n\ndata: [DONE]\n\n");
        });
        string config = dir.File("slow.json");
        File.WriteAllText(config, $$"""{"models":[{"name":"slow","type":"openai","base_url":"{{upstream.BaseUrl}}","model":"m","top_logprobs":0,"max_retries":0}],"server":{"shutdown_timeout_s":6} }""");
        await using var p = ServeProcess.Start(config);
        await p.WaitHealthyAsync();
        using var http = new HttpClient { BaseAddress = new Uri(p.Url), Timeout = TimeSpan.FromSeconds(60) };
        var shortStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        async Task<List<string>> Stream(int tokens)
        {
            using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(Chat("slow", "x", tokens, stream: true).ToJsonString(), Encoding.UTF8, "application/json") };
            using var resp = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
            var events = new List<string>();
            using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync());
            try
            {
                while (await reader.ReadLineAsync() is { } line)
                {
                    if (!line.StartsWith("data: ")) continue;
                    events.Add(line[6..]);
                    if (tokens < 20 && line.Contains(" w0")) shortStarted.TrySetResult();
                }
            }
            catch (Exception e) when (e is HttpIOException or IOException) { events.Add("EXCEPTION " + e.Message); }
            return events;
        }
        var longOne = Stream(80);
        var shortOne = Stream(12);
        await shortStarted.Task.WaitAsync(TimeSpan.FromSeconds(60)); // both in flight, the short one part-way
        p.Terminate();
        var shortEvents = await shortOne.WaitAsync(TimeSpan.FromSeconds(30));
        var longEvents = await longOne.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(shortEvents[^1] == "[DONE]", string.Join("\n", shortEvents) + "\n" + p.Output);
        Assert.True(longEvents[^1].StartsWith("{\"error\""), string.Join("\n", longEvents) + "\n" + p.Output);
        var err = JsonNode.Parse(longEvents[^1])!["error"];
        Assert.Equal("server_shutdown", err!["code"]!.GetValue<string>());
        Assert.Equal(0, await p.WaitExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Contains("shutting down", p.Output);
    }

    [Fact]
    public async Task Keys_never_appear_in_logs_metrics_traces_or_answers()
    {
        using var dir = new TempDir();
        const string good = "sk-very-secret-key-9f8e7d6c5b4a", admin = "sk-admin-secret-0a1b2c3d4e5f", wrong = "sk-very-secret-key-9f8e7d6c5b4X";
        string keys = KeysTests.WriteKeys(dir, $$"""{"keys":[{"name":"app","key":"{{good}}","rpm":5},{"name":"ops","key":"{{admin}}","admin":true}]}""");
        string config = dir.File("serve.json");
        File.WriteAllText(config, $$"""
            {"models":[{"name":"s","path":"{{TestPaths.Stories260K}}"},{"name":"x","path":"{{TestPaths.Llama2Xs}}"}],
             "collaborations":{"fusion":{"method":"logit_fusion","models":["s","x"] } },
             "server":{"api_keys_file":"{{keys}}","log_level":"Debug"} }
            """);
        await using var p = ServeProcess.Start(config, env: new Dictionary<string, string> { ["CONSORT_API_KEYS"] = "" });
        await p.WaitHealthyAsync();
        var seen = new StringBuilder();
        async Task Call(string key, HttpMethod method, string path, JsonObject? body = null)
        {
            using var c = new HttpClient { BaseAddress = new Uri(p.Url) };
            c.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
            using var req = new HttpRequestMessage(method, path);
            if (body is not null) req.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
            req.Headers.Add("X-Consort-Trace", "1");
            using var resp = await c.SendAsync(req);
            seen.AppendLine(resp.Headers.ToString()).AppendLine(await resp.Content.ReadAsStringAsync());
        }
        await Call(good, HttpMethod.Post, "/v1/chat/completions", Chat("fusion", "Once upon a time"));
        await Call(good, HttpMethod.Post, "/v1/chat/completions", Chat("fusion", "Once upon a time", stream: true));
        await Call(good, HttpMethod.Post, "/v1/completions", new JsonObject { ["model"] = "s", ["prompt"] = "Once", ["max_tokens"] = 4, ["logprobs"] = 2 });
        await Call(wrong, HttpMethod.Post, "/v1/chat/completions", Chat("fusion", "x"));
        for (int i = 0; i < 6; i++) await Call(good, HttpMethod.Post, "/v1/chat/completions", Chat("s", "x")); // past the rpm limit
        await Call(good, HttpMethod.Get, "/admin/keys");
        await Call(admin, HttpMethod.Get, "/admin/keys");
        await Call(admin, HttpMethod.Get, "/metrics");
        await Call(good, HttpMethod.Get, "/v1/models");
        p.Terminate();
        await p.WaitExitAsync(TimeSpan.FromSeconds(30));
        string everything = seen + p.Output;
        Assert.Contains("\"name\":\"app\"", everything); // the admin endpoint answered, by name
        Assert.Contains("key=app", p.Output);              // and the log names the key
        foreach (var secret in new[] { good, admin, wrong, good[..12], good[^12..], admin[^12..] })
            Assert.DoesNotContain(secret, everything);
    }

    [Theory]
    [InlineData("http://127.0.0.1:99999")]
    [InlineData("not-a-url")]
    [InlineData("busy")]
    public async Task Bad_listen_addresses_are_one_line_errors(string urls)
    {
        using var dir = new TempDir();
        using var busy = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        busy.Start();
        int port = ((System.Net.IPEndPoint)busy.LocalEndpoint).Port;
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "consort.dll"), "serve", StoriesConfig(dir, "one"),
            "--urls", urls == "busy" ? $"http://127.0.0.1:{port}" : urls]) { RedirectStandardError = true, RedirectStandardOutput = true };
        using var proc = System.Diagnostics.Process.Start(psi)!;
        var stderr = proc.StandardError.ReadToEndAsync();
        var stdout = proc.StandardOutput.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        await proc.WaitForExitAsync(cts.Token);
        Assert.Equal(1, proc.ExitCode);
        var lines = (await stderr).Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith("building") && !l.Contains("no API keys")).ToList();
        Assert.Single(lines);
        Assert.StartsWith("error: ", lines[0]);
        Assert.DoesNotContain("   at ", await stderr + await stdout);
        Assert.Contains(urls == "busy" ? "address already in use" : "HOST:PORT", lines[0]);
    }
}
