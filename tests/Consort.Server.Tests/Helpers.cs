using System.Net.Http.Headers;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json.Nodes;
using Consort.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;

namespace Consort.Server.Tests;

/// <summary>A real Kestrel server on a loopback port that answers with a scripted handler; counts attempts.</summary>
internal sealed class StubServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _attempts;

    private StubServer(WebApplication app) { _app = app; }

    /// <summary>Attempts received so far.</summary>
    public int Attempts => Volatile.Read(ref _attempts);
    /// <summary>Bodies of the requests, in order.</summary>
    public List<string> Bodies { get; } = [];
    /// <summary>Authorization headers, in order.</summary>
    public List<string?> AuthHeaders { get; } = [];
    /// <summary>Arrival times of requests.</summary>
    public List<DateTime> Times { get; } = [];
    /// <summary>Base URL including /v1.</summary>
    public string BaseUrl => _app.Urls.First() + "/v1";

    /// <summary>Starts the stub; the handler gets the 1-based attempt number.</summary>
    public static async Task<StubServer> StartAsync(Func<HttpContext, int, Task> handler)
    {
        var b = WebApplication.CreateSlimBuilder();
        b.WebHost.UseUrls("http://127.0.0.1:0");
        b.Logging.ClearProviders();
        var app = b.Build();
        var stub = new StubServer(app);
        app.Run(async ctx =>
        {
            int n = Interlocked.Increment(ref stub._attempts);
            using var reader = new StreamReader(ctx.Request.Body);
            string body = await reader.ReadToEndAsync();
            ctx.Items["body"] = body;
            lock (stub.Bodies) { stub.Bodies.Add(body); stub.AuthHeaders.Add(ctx.Request.Headers.Authorization); stub.Times.Add(DateTime.UtcNow); }
            await handler(ctx, n);
        });
        await app.StartAsync();
        return stub;
    }

    /// <summary>Writes a JSON body.</summary>
    public static Task Json(HttpContext ctx, string json, int status = 200)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json";
        return ctx.Response.WriteAsync(json);
    }

    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(2000);
        await _app.StopAsync(cts.Token);
        await _app.DisposeAsync();
    }
}

/// <summary>Recorded response bodies under Recorded/.</summary>
internal static class Recorded
{
    public static string Read(string name) => File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Recorded", name));
}

/// <summary>A running Consort server on a free loopback port with an HttpClient pointed at it.</summary>
internal sealed class RunningServer : IAsyncDisposable
{
    private RunningServer(WebApplication app, HttpClient http) { App = app; Http = http; }
    public WebApplication App { get; }
    public HttpClient Http { get; }
    public string Url => App.Urls.First();

    public static async Task<RunningServer> StartAsync(IReadOnlyList<ConsortModel> models, ServerOptions? options = null, string? key = "test-key",
        IReadOnlyDictionary<string, IEmbeddingGenerator<string, Embedding<float>>>? embedders = null)
    {
        options ??= new ServerOptions();
        var o = new ServerOptions
        {
            Urls = "http://127.0.0.1:0",
            ApiKeys = options.ApiKeys.Count > 0 ? options.ApiKeys : key is null || options.ApiKeysFile is not null ? [] : [key],
            ReadKeysFromEnvironment = false,
            MaxBodyBytes = options.MaxBodyBytes,
            MaxTokens = options.MaxTokens,
            DefaultMaxTokens = options.DefaultMaxTokens,
            MaxMessages = options.MaxMessages,
            RequestTimeout = options.RequestTimeout,
            MaxConcurrentRequests = options.MaxConcurrentRequests,
            MaxQueue = options.MaxQueue,
            QueueTimeout = options.QueueTimeout,
            MaxChoices = options.MaxChoices,
            ShutdownTimeout = options.ShutdownTimeout,
            Redis = options.Redis,
            ApiKeysFile = options.ApiKeysFile,
            ExtraLogger = options.ExtraLogger,
            MinimumLogLevel = options.ExtraLogger is null ? LogLevel.Error : LogLevel.Information,
        };
        var app = ConsortServer.Build(o, models, embedders);
        await app.StartAsync();
        var http = new HttpClient { BaseAddress = new Uri(app.Urls.First()), Timeout = TimeSpan.FromSeconds(60) };
        if (key is not null) http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
        return new RunningServer(app, http);
    }

    public async Task<(int Status, JsonNode? Json)> PostAsync(string path, JsonObject body, HttpClient? client = null)
    {
        using var resp = await (client ?? Http).PostAsync(path, new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"));
        string text = await resp.Content.ReadAsStringAsync();
        return ((int)resp.StatusCode, text.Length > 0 ? JsonNode.Parse(text) : null);
    }

    /// <summary>Posts a streaming request and returns the SSE data payloads (the last is "[DONE]").</summary>
    public async Task<List<string>> PostStreamAsync(string path, JsonObject body)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        using var resp = await Http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", resp.Content.Headers.ContentType?.MediaType);
        var events = new List<string>();
        using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync());
        while (await reader.ReadLineAsync() is { } line)
            if (line.StartsWith("data: ")) events.Add(line[6..]);
        return events;
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        using var cts = new CancellationTokenSource(2000);
        await App.StopAsync(cts.Token);
        await App.DisposeAsync();
    }
}

/// <summary>Scripted chat client for orchestration tests: answers "NAME says: LAST USER TEXT", streaming word by word.</summary>
internal sealed class FakeChatClient(string name) : IChatClient
{
    public Func<CancellationToken, Task>? Before { get; init; }
    public bool AttachTrace { get; init; }
    /// <summary>Pause between streamed words.</summary>
    public TimeSpan WordDelay { get; init; }
    /// <summary>Calls received.</summary>
    public int Calls => Volatile.Read(ref _calls);
    private int _calls;
    /// <summary>Messages of the last call.</summary>
    public IReadOnlyList<ChatMessage>? LastMessages { get; private set; }

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _calls);
        LastMessages = [.. messages];
        if (Before is not null) await Before(cancellationToken);
        if (WordDelay > TimeSpan.Zero) await Task.Delay(WordDelay, cancellationToken);
        string text = Answer(messages, options);
        var r = new ChatResponse(new ChatMessage(ChatRole.Assistant, text))
        {
            Usage = new UsageDetails { InputTokenCount = 7, OutputTokenCount = text.Split(' ').Length },
            FinishReason = ChatFinishReason.Stop,
        };
        if (AttachTrace)
        {
            var trace = new CallTrace();
            trace.Add(new TraceEntry { Model = "member-a", Role = "sample 1", Output = text, InputTokens = 3, OutputTokens = 4, LatencyMs = 1 });
            trace.Add(new TraceEntry { Model = "member-b", Role = "sample 2", Output = text, InputTokens = 4, OutputTokens = 4, LatencyMs = 1 });
            r.WithTrace(trace);
        }
        if (options.WantsLogprobs()) r.WithTokenLogprobs([-0.5f, -0.25f]);
        return r;
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _calls);
        LastMessages = [.. messages];
        if (Before is not null) await Before(cancellationToken);
        var words = Answer(messages, options).Split(' ');
        for (int i = 0; i < words.Length; i++)
        {
            if (WordDelay > TimeSpan.Zero) await Task.Delay(WordDelay, cancellationToken);
            await Task.Yield();
            yield return new ChatResponseUpdate(ChatRole.Assistant, i == 0 ? words[i] : " " + words[i]);
        }
        yield return new ChatResponseUpdate { FinishReason = ChatFinishReason.Stop, Contents = [new UsageContent(new UsageDetails { InputTokenCount = 7, OutputTokenCount = words.Length })] };
    }

    private string Answer(IEnumerable<ChatMessage> messages, ChatOptions? options)
    {
        string text = $"{name} says: {messages.Last(m => m.Role == ChatRole.User).Text}";
        if (options?.Seed is { } seed) text += $" #{seed}";
        if (options?.MaxOutputTokens is { } max) text = string.Join(' ', text.Split(' ').Take(max));
        return text;
    }

    public object? GetService(Type serviceType, object? serviceKey = null) => null;
    public void Dispose() { }
}

/// <summary>Fake ConsortModels.</summary>
internal static class Fakes
{
    public static ConsortModel Model(string name, FakeChatClient? chat = null, string? method = null, IReadOnlyList<ConsortModel>? members = null) =>
        new(new ModelDescriptor { Name = name, Access = ModelAccess.Text }, chat ?? new FakeChatClient(name), null, members, method);
}

/// <summary>Loads stories260k once per test class.</summary>
public sealed class StoriesFixture : IDisposable
{
    public StoriesFixture()
    {
        Model = Consort.LlamaCpp.LlamaModelFactory.Load(new Consort.LlamaCpp.LlamaModelOptions { Path = TestPaths.Stories260K, Name = "stories260k", ContextSize = 512, Seed = 1 });
    }

    public ConsortModel Model { get; }
    public void Dispose() => Model.Dispose();
}

/// <summary>Checks OpenAI's error shape <c>{"error":{"message","type","param","code"}}</c>.</summary>
internal static class OpenAIErrors
{
    public static void Assert(JsonNode? json, string? param = null, string? code = null)
    {
        var err = json?["error"]?.AsObject();
        Xunit.Assert.NotNull(err);
        Xunit.Assert.False(string.IsNullOrEmpty(err!["message"]?.GetValue<string>()));
        Xunit.Assert.False(string.IsNullOrEmpty(err["type"]?.GetValue<string>()));
        Xunit.Assert.True(err.ContainsKey("param") && err.ContainsKey("code"));
        if (param is not null) Xunit.Assert.Equal(param, err["param"]?.GetValue<string>());
        if (code is not null) Xunit.Assert.Equal(code, err["code"]?.GetValue<string>());
    }
}
