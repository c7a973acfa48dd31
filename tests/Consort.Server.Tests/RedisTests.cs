using System.Text;
using System.Text.Json.Nodes;
using Consort.Caching;
using Consort.Cli.Commands;
using Consort.Server.State;
using Consort.Testing;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Logging.Abstractions;

namespace Consort.Server.Tests;

/// <summary>State shared across two gateway replicas through a real redis-server on loopback, and what happens when it goes away.</summary>
public sealed class RedisTests
{
    private const string Key = "sk-shared-1234567890";

    private static string KeysFile(TempDir dir, int rpm) => KeysTests.WriteKeys(dir, $$"""{"keys":[{"name":"shared","key":"{{Key}}","rpm":{{rpm}}}]}""");

    [Fact]
    public async Task Two_replicas_behind_one_redis_enforce_one_rate_limit()
    {
        using var redis = await RedisProcess.StartAsync();
        using var dir = new TempDir();
        var o = new ServerOptions { ApiKeysFile = KeysFile(dir, 4), Redis = redis.Connection };
        await using var r1 = await RunningServer.StartAsync([Fakes.Model("alpha")], o, key: null);
        await using var r2 = await RunningServer.StartAsync([Fakes.Model("alpha")], o, key: null);
        using var c1 = KeysTests.Client(r1.Url, Key);
        using var c2 = KeysTests.Client(r2.Url, Key);
        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(200, (await r1.PostAsync("/v1/chat/completions", KeysTests.Chat("alpha", "x"), c1)).Status);
            Assert.Equal(200, (await r2.PostAsync("/v1/chat/completions", KeysTests.Chat("alpha", "x"), c2)).Status);
        }
        // Four requests used the shared minute: either replica refuses the fifth.
        Assert.Equal(429, (await r1.PostAsync("/v1/chat/completions", KeysTests.Chat("alpha", "x"), c1)).Status);
        Assert.Equal(429, (await r2.PostAsync("/v1/chat/completions", KeysTests.Chat("alpha", "x"), c2)).Status);
        Assert.Contains("redis", JsonNode.Parse(await new HttpClient().GetStringAsync(r1.Url + "/health"))!["state"]!.GetValue<string>());
    }

    [Fact]
    public async Task The_redis_call_cache_is_one_distributed_cache_for_every_replica()
    {
        using var redis = await RedisProcess.StartAsync();
        using var a = RedisState.Connect(redis.Connection, "test:", NullLogger.Instance);
        using var b = RedisState.Connect(redis.Connection, "test:", NullLogger.Instance);
        IDistributedCache ca = a.Cache, cb = b.Cache;
        await ca.SetAsync("answer", Encoding.UTF8.GetBytes("42"), new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromMinutes(1) });
        Assert.Equal("42", Encoding.UTF8.GetString((await cb.GetAsync("answer"))!));
        await cb.RemoveAsync("answer");
        Assert.Null(await ca.GetAsync("answer"));
        Assert.Equal(3, await a.AddAsync("n", 3, TimeSpan.FromMinutes(1)));
        Assert.Equal(5, await b.AddAsync("n", 2, TimeSpan.FromMinutes(1)));
        Assert.Equal(5, await a.GetAsync("n"));
    }

    [Fact]
    public async Task Served_models_share_their_call_cache_through_redis_across_replicas()
    {
        using var redis = await RedisProcess.StartAsync();
        using var dir = new TempDir();
        string config = dir.File("serve.json");
        string prefix = $"cache-{Guid.NewGuid():N}:";
        File.WriteAllText(config, new JsonObject
        {
            ["models"] = new JsonArray(new JsonObject { ["name"] = "story", ["path"] = TestPaths.Stories260K }),
            ["server"] = new JsonObject { ["redis"] = redis.Connection, ["redis_prefix"] = prefix, ["cache"] = "redis" },
        }.ToJsonString());
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 12 };
        List<ChatMessage> prompt = [new(ChatRole.User, "Once upon a time")];

        var first = new CacheCounters();
        string fromA;
        await using (var a = await ServeConfig.LoadAsync(config, null, null, default))
        using (CacheCounters.Scope(first))
            fromA = (await a.Models[0].Chat.GetResponseAsync(prompt, options)).Text;
        Assert.Equal((0, 1), (first.Hits, first.Misses));

        // A second replica (its own process state, same redis) answers the same deterministic call from the cache.
        var second = new CacheCounters();
        await using var b = await ServeConfig.LoadAsync(config, null, null, default);
        using (CacheCounters.Scope(second))
            Assert.Equal(fromA, (await b.Models[0].Chat.GetResponseAsync(prompt, options)).Text);
        Assert.Equal((1, 0), (second.Hits, second.Misses));
        Assert.False(string.IsNullOrEmpty(fromA));
    }

    [Fact]
    public async Task Server_cache_values_are_checked_before_any_model_loads()
    {
        using var dir = new TempDir();
        string Write(string server)
        {
            File.WriteAllText(dir.File("serve.json"), $$"""{"models":[{"name":"m","path":"{{TestPaths.Stories260K}}"}],"server":{{server}}}""");
            return dir.File("serve.json");
        }
        var e1 = await Assert.ThrowsAsync<ConfigException>(() => ServeConfig.LoadAsync(Write("""{"cache":"redis"}"""), null, null, default));
        Assert.Contains("'cache' redis needs 'redis'", e1.Message);
        var e2 = await Assert.ThrowsAsync<ConfigException>(() => ServeConfig.LoadAsync(Write("""{"cache":"disk"}"""), null, null, default));
        Assert.Contains("not one of none, redis, sqlite", e2.Message);
    }

    [Fact]
    public async Task When_redis_goes_away_the_gateway_keeps_serving_on_local_state_and_says_so()
    {
        var redis = await RedisProcess.StartAsync();
        using var dir = new TempDir();
        var logs = new CapturingLoggerProvider();
        await using var s = await RunningServer.StartAsync([Fakes.Model("alpha")],
            new ServerOptions { ApiKeysFile = KeysFile(dir, 1000), Redis = redis.Connection, ExtraLogger = logs }, key: null);
        using var c = KeysTests.Client(s.Url, Key);
        Assert.Equal(200, (await s.PostAsync("/v1/chat/completions", KeysTests.Chat("alpha", "x"), c)).Status);
        string before = await new HttpClient().GetStringAsync(s.Url + "/metrics");
        Assert.Matches(@"consort_server_redis_up\{[^}]*\} 1", before);
        redis.Dispose();
        for (int i = 0; i < 5; i++) Assert.Equal(200, (await s.PostAsync("/v1/chat/completions", KeysTests.Chat("alpha", "x"), c)).Status);
        string after = await new HttpClient().GetStringAsync(s.Url + "/metrics");
        Assert.Matches(@"consort_server_redis_up\{[^}]*\} 0", after);
        Assert.Contains(logs.Lines, l => l.Contains("redis unavailable") && l.Contains("local state"));
        Assert.Contains("local", JsonNode.Parse(await new HttpClient().GetStringAsync(s.Url + "/health"))!["state"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_redis_that_does_not_answer_at_start_is_a_clear_config_error()
    {
        int port = TestNet.FreePort();
        var e = await Assert.ThrowsAsync<ConfigException>(() => RunningServer.StartAsync([Fakes.Model("alpha")], new ServerOptions { Redis = $"127.0.0.1:{port}" }));
        Assert.Contains($"127.0.0.1:{port}", e.Message);
        Assert.Contains("does not answer", e.Message);
    }
}
