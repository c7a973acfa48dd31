using System.Text.Json.Nodes;
using Consort.Caching;
using Consort.Config;
using Consort.LlamaCpp;
using Consort.Methods;
using Consort.Testing;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Caching.Distributed;

namespace Consort.Tests.Caching;

/// <summary>The call cache: a real SQLite file and a real llama.cpp model.</summary>
public sealed class CallCacheTests
{
    [Fact]
    public async Task SqliteStoreSetsGetsExpiresAndRemoves()
    {
        using var tmp = new TempDir();
        var time = new ManualTime(DateTimeOffset.Parse("2026-01-01T00:00:00Z"));
        using var cache = new SqliteDistributedCache(tmp.File("c.sqlite"), time);
        await cache.SetAsync("a", [1, 2, 3], new DistributedCacheEntryOptions());
        await cache.SetAsync("b", [4], new DistributedCacheEntryOptions { AbsoluteExpirationRelativeToNow = TimeSpan.FromMinutes(5) });
        await cache.SetAsync("c", [5], new DistributedCacheEntryOptions { SlidingExpiration = TimeSpan.FromMinutes(2) });
        Assert.Equal([1, 2, 3], await cache.GetAsync("a"));
        time.Now += TimeSpan.FromMinutes(1.5);
        Assert.Equal([5], cache.Get("c")); // touched: lives 2 more minutes
        time.Now += TimeSpan.FromMinutes(1.5);
        Assert.Equal([5], cache.Get("c"));
        Assert.Equal([4], cache.Get("b"));
        time.Now += TimeSpan.FromMinutes(3);
        Assert.Null(cache.Get("b"));
        Assert.Null(cache.Get("c"));
        await cache.RemoveAsync("a");
        Assert.Null(await cache.GetAsync("a"));
        // A second store on the same file (another process, a shard) sees the entries.
        cache.Set("d", [9], new DistributedCacheEntryOptions());
        using var other = new SqliteDistributedCache(tmp.File("c.sqlite"));
        Assert.Equal([9], other.Get("d"));
        Assert.Contains("cannot open", Assert.Throws<ConsortException>(() => new SqliteDistributedCache("/proc/no/such/dir/c.sqlite")).Message);
    }

    [Fact]
    public async Task AHitEqualsTheMissTextLogprobsAndUsageAndAChangedModelFileMisses()
    {
        using var tmp = new TempDir();
        using var store = new SqliteDistributedCache(tmp.File("calls.sqlite"));
        var copy = tmp.File("model.gguf");
        File.Copy(TestPaths.Stories260K, copy);
        var spec = new GgufModelSpec("s", copy, copy, new JsonObject());
        using var model = LlamaModelFactory.Load(new LlamaModelOptions { Path = copy, Name = "s", ContextSize = 256 });
        var counting = new CountingChatClient(model.Chat);
        var counters = new CacheCounters();
        var cached = new ChatClientBuilder(counting).UseConsortCache(store, ModelIdentity.Of(spec), new ConsortCacheOptions { Counters = counters }).Build();
        var messages = new List<ChatMessage> { new(ChatRole.User, "Once upon a time") };
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 24 }.RequestingLogprobs();

        var miss = await cached.GetResponseAsync(messages, options);
        var hit = await cached.GetResponseAsync(messages, options);
        Assert.Equal(1, counting.Calls);
        Assert.Equal((1, 1), (counters.Hits, counters.Misses));
        Assert.Equal(miss.Text, hit.Text);
        Assert.NotEmpty(miss.Text);
        Assert.Equal(miss.GetTokenLogprobs(), hit.GetTokenLogprobs());
        Assert.IsType<float[]>(hit.AdditionalProperties![TokenLogprobExtensions.LogprobsKey]); // typed again after the JSON round trip
        Assert.Equal(miss.Usage!.InputTokenCount, hit.Usage!.InputTokenCount);
        Assert.Equal(miss.Usage.OutputTokenCount, hit.Usage.OutputTokenCount);
        Assert.Equal(miss.FinishReason, hit.FinishReason);
        Assert.Equal(Confidence.Of(miss), Confidence.Of(hit));

        // Other options (a token limit) are another key.
        await cached.GetResponseAsync(messages, new ChatOptions { Temperature = 0, MaxOutputTokens = 8 });
        Assert.Equal(2, counting.Calls);
        // Sampling without a seed is never cached; with a seed it is.
        await cached.GetResponseAsync(messages, new ChatOptions { Temperature = 0.8f, MaxOutputTokens = 8 });
        await cached.GetResponseAsync(messages, new ChatOptions { Temperature = 0.8f, MaxOutputTokens = 8 });
        Assert.Equal(4, counting.Calls);
        await cached.GetResponseAsync(messages, new ChatOptions { Temperature = 0.8f, Seed = 3, MaxOutputTokens = 8 });
        await cached.GetResponseAsync(messages, new ChatOptions { Temperature = 0.8f, Seed = 3, MaxOutputTokens = 8 });
        Assert.Equal(5, counting.Calls);

        // The same call after the model file changed is a miss: the identity is the file's digest.
        var before = ModelIdentity.Of(spec);
        await using (var f = new FileStream(copy, FileMode.Append)) f.WriteByte(0);
        File.SetLastWriteTimeUtc(copy, DateTime.UtcNow.AddMinutes(1));
        var after = ModelIdentity.Of(spec);
        Assert.NotEqual(before, after);
        var changed = new ChatClientBuilder(counting).UseConsortCache(store, after).Build();
        await changed.GetResponseAsync(messages, options);
        Assert.Equal(6, counting.Calls);
    }

    [Fact]
    public async Task ACollaborationsTraceAndCostSurviveTheCache()
    {
        using var tmp = new TempDir();
        using var store = new SqliteDistributedCache(tmp.File("calls.sqlite"));
        var trace = new CallTrace();
        trace.Add(new TraceEntry { Model = "a", Role = "sample 1", Output = "4", InputTokens = 3, OutputTokens = 1, Cost = 0.25m, Data = new() { ["confidence"] = 0.9 } });
        var inner = new FixedChatClient(new ChatResponse(new ChatMessage(ChatRole.Assistant, "4")).WithTrace(trace));
        var cached = new ChatClientBuilder(inner).UseConsortCache(store, "collab:x").Build();
        var o = new ChatOptions { Temperature = 0 };
        var first = await cached.GetResponseAsync([new ChatMessage(ChatRole.User, "2+2")], o);
        var second = await cached.GetResponseAsync([new ChatMessage(ChatRole.User, "2+2")], o);
        Assert.Equal(1, inner.Calls);
        Assert.Equal(first.GetCost(), second.GetCost());
        var t = Assert.Single(second.GetTrace());
        Assert.Equal(("a", "sample 1", "4", 3L, 0.25m), (t.Model, t.Role, t.Output, t.InputTokens, t.Cost));
        // Reading also works on the raw JSON form, as MEAI's own distributed cache returns it.
        var raw = System.Text.Json.JsonSerializer.Deserialize<ChatResponse>(ConsortCacheChatClient.Encode(first), AIJsonUtilities.DefaultOptions)!;
        Assert.IsType<System.Text.Json.JsonElement>(raw.AdditionalProperties![ConsortResponseExtensions.TraceKey]);
        Assert.Equal("a", Assert.Single(raw.GetTrace()).Model);
        Assert.Equal(0.25m, raw.GetCost());
    }

    private sealed class ManualTime(DateTimeOffset start) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = start;
        public override DateTimeOffset GetUtcNow() => Now;
    }

    private sealed class CountingChatClient(IChatClient inner) : DelegatingChatClient(inner)
    {
        public int Calls;
        public override Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref Calls);
            return base.GetResponseAsync(messages, options, cancellationToken);
        }
    }

    private sealed class FixedChatClient(ChatResponse response) : IChatClient
    {
        public int Calls;
        public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref Calls);
            return Task.FromResult(response);
        }
        public IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
            throw new NotSupportedException();
        public object? GetService(Type serviceType, object? serviceKey = null) => null;
        public void Dispose() { }
    }
}
