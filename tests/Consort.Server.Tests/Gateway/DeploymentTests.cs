using System.Text.Json.Nodes;
using Consort.Gateway;
using Microsoft.Extensions.AI;

namespace Consort.Server.Tests;

/// <summary>
/// Deployments, routing, cooldown, retries and fallbacks as chat-client middleware; streams cut or stalled by real
/// upstream HTTP servers on loopback continue elsewhere from the text already sent.
/// </summary>
public sealed class DeploymentTests
{
    private static readonly List<ChatMessage> Hello = [new(ChatRole.User, "hello")];

    private static FakeChatClient Failing(string name, string message) => new(name) { Before = _ => throw new ConsortException(message) };

    private static (IChatClient Chat, DeploymentPool Pool) Routed(GatewayOptions o, params (string Name, IChatClient Client, double Weight)[] ds)
    {
        var pool = new DeploymentPool("m", [.. ds.Select(d => new Deployment(d.Name, d.Client, d.Weight))], o);
        return (new ChatClientBuilder(ds[0].Client).UseDeployments(pool).Build(), pool);
    }

    [Fact]
    public async Task Round_robin_alternates_and_weighted_follows_the_weights()
    {
        var a = new FakeChatClient("a");
        var b = new FakeChatClient("b");
        var (rr, _) = Routed(new GatewayOptions(), ("a", a, 1), ("b", b, 1));
        var answers = new List<string>();
        for (int i = 0; i < 6; i++) answers.Add((await rr.GetResponseAsync(Hello)).Text.Split(' ')[0]);
        Assert.Equal(["a", "b", "a", "b", "a", "b"], answers);

        var c = new FakeChatClient("c");
        var d = new FakeChatClient("d");
        var (w, _) = Routed(new GatewayOptions { Routing = RoutingStrategy.Weighted, Seed = 7 }, ("c", c, 3), ("d", d, 1));
        for (int i = 0; i < 400; i++) await w.GetResponseAsync(Hello);
        // 3:1 within a few percent over 400 calls (seeded, so the check is reproducible).
        Assert.InRange(c.Calls / 400.0, 0.68, 0.82);
        Assert.Equal(400, c.Calls + d.Calls);
    }

    [Fact]
    public async Task Least_busy_avoids_the_busy_deployment_and_lowest_latency_prefers_the_fast_one()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var slow = new FakeChatClient("slow") { Before = async ct => { entered.TrySetResult(); await gate.Task.WaitAsync(ct); } };
        var idle = new FakeChatClient("idle");
        var (lb, pool) = Routed(new GatewayOptions { Routing = RoutingStrategy.LeastBusy }, ("slow", slow, 1), ("idle", idle, 1));
        var held = lb.GetResponseAsync(Hello); // round 0 goes to "slow" (both idle, first in turn)
        await entered.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, pool.InFlight(0));
        for (int i = 0; i < 5; i++) Assert.StartsWith("idle", (await lb.GetResponseAsync(Hello)).Text);
        gate.SetResult();
        await held;

        var fast = new FakeChatClient("fast");
        var sluggish = new FakeChatClient("sluggish") { WordDelay = TimeSpan.FromMilliseconds(60) };
        var (ll, _) = Routed(new GatewayOptions { Routing = RoutingStrategy.LowestLatency }, ("sluggish", sluggish, 1), ("fast", fast, 1));
        for (int i = 0; i < 12; i++) await ll.GetResponseAsync(Hello);
        Assert.True(fast.Calls >= 10, $"fast {fast.Calls}, sluggish {sluggish.Calls}");
    }

    [Fact]
    public async Task A_failing_deployment_is_retried_elsewhere_cooled_down_and_comes_back()
    {
        bool broken = true;
        var flaky = new FakeChatClient("flaky") { Before = _ => broken ? throw new ConsortException("model 'flaky' at http://x: HTTP 503 ServiceUnavailable: down") : Task.CompletedTask };
        var good = new FakeChatClient("good");
        var (chat, pool) = Routed(new GatewayOptions { AllowedFails = 1, Cooldown = TimeSpan.FromMilliseconds(600) }, ("flaky", flaky, 1), ("good", good, 1));
        // Every call is answered: the failed attempt moves to the other deployment.
        for (int i = 0; i < 6; i++) Assert.StartsWith("good", (await chat.GetResponseAsync(Hello)).Text);
        Assert.True(pool.IsCooling(0), "two failures within a minute (allowed_fails 1) cool the deployment down");
        int flakyCalls = flaky.Calls;
        Assert.Equal(2, flakyCalls); // skipped while cooling
        broken = false;
        await Task.Delay(700);
        Assert.False(pool.IsCooling(0));
        var back = new List<string>();
        for (int i = 0; i < 4; i++) back.Add((await chat.GetResponseAsync(Hello)).Text.Split(' ')[0]);
        Assert.Contains("flaky", back);
    }

    [Fact]
    public async Task Bad_requests_are_not_retried_and_a_rate_limit_cools_down_at_once()
    {
        var bad = Failing("bad", "model 'bad' at http://x: HTTP 400 BadRequest: 'temperature' must be a number");
        var other = new FakeChatClient("other");
        var (chat, _) = Routed(new GatewayOptions(), ("bad", bad, 1), ("other", other, 1));
        await Assert.ThrowsAsync<ConsortException>(() => chat.GetResponseAsync(Hello));
        Assert.Equal(0, other.Calls);

        var limited = Failing("limited", "model 'limited' at http://x: HTTP 429 TooManyRequests: slow down");
        var (chat2, pool2) = Routed(new GatewayOptions { AllowedFails = 5 }, ("limited", limited, 1), ("spare", new FakeChatClient("spare"), 1));
        Assert.StartsWith("spare", (await chat2.GetResponseAsync(Hello)).Text);
        Assert.True(pool2.IsCooling(0));

        // Every deployment down: one error naming each attempt.
        var (dead, _) = Routed(new GatewayOptions(), ("x", Failing("x", "boom x"), 1), ("y", Failing("y", "boom y"), 1));
        var e = await Assert.ThrowsAsync<GatewayExhaustedException>(() => dead.GetResponseAsync(Hello));
        Assert.Contains("boom x", e.Message);
        Assert.Contains("boom y", e.Message);
    }

    [Fact]
    public async Task Fallbacks_take_over_on_errors_and_context_window_fallbacks_on_overflow()
    {
        var down = Failing("primary", "model 'primary' at http://x: unreachable: connection refused");
        var fb = new FakeChatClient("fallback");
        var chat = new ChatClientBuilder(down).UseModelFallbacks("primary", [("fallback", fb)]).Build();
        Assert.StartsWith("fallback", (await chat.GetResponseAsync(Hello)).Text);

        var small = Failing("small", "model 'small': prompt of 900 tokens exceeds context of 512");
        var big = new FakeChatClient("big");
        var general = new FakeChatClient("general");
        var chat2 = new ChatClientBuilder(small).UseModelFallbacks("small", [("general", general)], [("big", big)]).Build();
        Assert.StartsWith("big", (await chat2.GetResponseAsync(Hello)).Text);
        Assert.Equal(0, general.Calls);

        // A bad request stays the client's problem: no fallback hides it.
        var bad = Failing("strict", "model 'strict' at http://x: HTTP 400 BadRequest: unknown field");
        var chat3 = new ChatClientBuilder(bad).UseModelFallbacks("strict", [("general", general)]).Build();
        await Assert.ThrowsAsync<ConsortException>(() => chat3.GetResponseAsync(Hello));
        Assert.Equal(0, general.Calls);
    }

    [Theory]
    [InlineData(StreamFault.Cut)]
    [InlineData(StreamFault.Stall)]
    [InlineData(StreamFault.NoFinish)]
    public async Task A_stream_broken_upstream_continues_on_the_next_deployment_from_the_text_sent(StreamFault fault)
    {
        await using var broken = await UpstreamStub.StartAsync(["Once", "upon", "a", "time"], fault, faultAfter: 2);
        await using var good = await UpstreamStub.StartAsync([" a", "time", "there", "was"], StreamFault.None);
        using var m1 = UpstreamStub.Model("broken", broken);
        using var m2 = UpstreamStub.Model("good", good);
        // Warm both clients (connections, JIT) so the stall limit measures the upstreams, not a loaded test machine.
        await m1.Chat.GetResponseAsync(Hello);
        await m2.Chat.GetResponseAsync(Hello);
        var log = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var (chat, pool) = Routed(new GatewayOptions { StreamStall = TimeSpan.FromSeconds(3), AllowedFails = 0, Log = log.Enqueue }, ("broken", m1.Chat, 1), ("good", m2.Chat, 1));
        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in chat.GetStreamingResponseAsync(Hello, new ChatOptions { MaxOutputTokens = 20 })) updates.Add(u);
        string text = string.Concat(updates.Select(u => u.Text));
        Assert.True(text == "Once upon a time there was", $"{text} | {string.Join(" ;; ", log)}");
        Assert.Equal(ChatFinishReason.Stop, updates.Last(u => u.FinishReason is not null).FinishReason);
        // The second deployment was asked to continue the answer: the text already sent is the assistant's message.
        var sent = JsonNode.Parse(good.Bodies[^1])!["messages"]!.AsArray();
        Assert.Equal("assistant", sent[^1]!["role"]!.GetValue<string>());
        Assert.Equal("Once upon", sent[^1]!["content"]!.GetValue<string>());
        Assert.Equal(18, JsonNode.Parse(good.Bodies[^1])!["max_completion_tokens"]?.GetValue<int>() ?? JsonNode.Parse(good.Bodies[^1])!["max_tokens"]!.GetValue<int>());
        Assert.True(pool.IsCooling(0), "the deployment whose stream broke cools down");
    }

    [Fact]
    public async Task A_stream_that_breaks_with_nowhere_to_go_ends_with_an_error_not_silence()
    {
        await using var stalled = await UpstreamStub.StartAsync(["one", "two", "three"], StreamFault.Stall, faultAfter: 1);
        using var m = UpstreamStub.Model("stalled", stalled);
        await m.Chat.GetResponseAsync(Hello); // warm: the stall limit should measure the upstream only
        var log = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var (chat, _) = Routed(new GatewayOptions { StreamStall = TimeSpan.FromSeconds(3), Log = log.Enqueue }, ("stalled", m.Chat, 1));
        var texts = new List<string>();
        var e = await Assert.ThrowsAsync<GatewayExhaustedException>(async () =>
        {
            await foreach (var u in chat.GetStreamingResponseAsync(Hello)) texts.Add(u.Text);
        });
        Assert.Contains("stalled", e.Message);
        Assert.Equal("one", string.Concat(texts));
        Assert.Contains(log, l => l.Contains("after 3 characters"));
    }
}
