using System.Diagnostics;
using System.Text.Json.Nodes;
using Consort.OpenAI;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.AI;

namespace Consort.Server.Tests;

/// <summary>The backend's HTTP resilience against real loopback stubs: retries, timeouts, Retry-After, unreachable hosts.</summary>
public sealed class ResilienceTests
{
    private static OpenAIModelOptions Options(string url, int retries = 3, double timeoutS = 10, int topK = 0) => new()
    {
        Name = "flaky", BaseUrl = url, Model = "m", TopLogprobs = topK, MaxRetries = retries,
        Timeout = TimeSpan.FromSeconds(timeoutS), BackoffBase = TimeSpan.FromMilliseconds(10),
    };

    [Fact]
    public async Task Two_500s_then_200_is_retried_to_success()
    {
        await using var stub = await StubServer.StartAsync((ctx, n) => n <= 2
            ? StubServer.Json(ctx, """{"error":{"message":"boom"}}""", 500)
            : StubServer.Json(ctx, Recorded.Read("llamacpp-chat-logprobs.json")));
        using var model = OpenAIModelFactory.Create(Options(stub.BaseUrl));
        var r = await model.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")]);
        Assert.Equal(" Lily", r.Text);
        Assert.Equal(3, stub.Attempts);
    }

    [Fact]
    public async Task Completions_path_retries_too()
    {
        await using var stub = await StubServer.StartAsync((ctx, n) => n <= 2
            ? StubServer.Json(ctx, "{}", 503)
            : StubServer.Json(ctx, Recorded.Read("llamacpp-completions-chatstyle.json")));
        using var model = OpenAIModelFactory.Create(Options(stub.BaseUrl, topK: 3) );
        using var seq = await model.Tokens!.StartAsync(model.Tokens.Tokenizer.Encode("x"));
        Assert.Equal(3, seq.Next.TopIds!.Length);
        Assert.Equal(3, stub.Attempts);
    }

    [Fact]
    public async Task Persistent_500_gives_up_after_max_retries_with_clear_error()
    {
        await using var stub = await StubServer.StartAsync((ctx, _) => StubServer.Json(ctx, """{"error":{"message":"overloaded"}}""", 500));
        using var model = OpenAIModelFactory.Create(Options(stub.BaseUrl, retries: 2, topK: 2));
        var e = await Assert.ThrowsAsync<ConsortException>(async () => await model.Tokens!.StartAsync(model.Tokens.Tokenizer.Encode("x")));
        Assert.Contains("flaky", e.Message);
        Assert.Contains(stub.BaseUrl, e.Message);
        Assert.Contains("500", e.Message);
        Assert.Equal(3, stub.Attempts);
    }

    [Fact]
    public async Task Hanging_endpoint_hits_the_timeout_with_a_clear_error_in_bounded_time()
    {
        await using var stub = await StubServer.StartAsync(async (ctx, _) => await Task.Delay(Timeout.Infinite, ctx.RequestAborted));
        using var model = OpenAIModelFactory.Create(Options(stub.BaseUrl, retries: 0, timeoutS: 1));
        var sw = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<ConsortException>(() => model.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")]));
        Assert.InRange(sw.Elapsed.TotalSeconds, 0.9, 6);
        Assert.Contains("timed out", e.Message);
        Assert.Contains("flaky", e.Message);
        Assert.Contains(stub.BaseUrl, e.Message);
    }

    [Fact]
    public async Task Attempt_timeout_is_retried_and_total_stays_bounded()
    {
        await using var stub = await StubServer.StartAsync(async (ctx, n) =>
        {
            if (n == 1) await Task.Delay(Timeout.Infinite, ctx.RequestAborted);
            await StubServer.Json(ctx, Recorded.Read("llamacpp-chat-logprobs.json"));
        });
        using var model = OpenAIModelFactory.Create(Options(stub.BaseUrl, retries: 1, timeoutS: 0.5));
        var sw = Stopwatch.StartNew();
        var r = await model.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")]);
        Assert.Equal(" Lily", r.Text);
        Assert.Equal(2, stub.Attempts);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Retry_after_header_is_honoured()
    {
        await using var stub = await StubServer.StartAsync((ctx, n) =>
        {
            if (n == 1)
            {
                ctx.Response.Headers.RetryAfter = "1";
                return StubServer.Json(ctx, """{"error":{"message":"slow down"}}""", 429);
            }
            return StubServer.Json(ctx, Recorded.Read("llamacpp-chat-logprobs.json"));
        });
        using var model = OpenAIModelFactory.Create(Options(stub.BaseUrl));
        var r = await model.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")]);
        Assert.Equal(2, stub.Attempts);
        var gap = stub.Times[1] - stub.Times[0];
        // Backoff base is 10 ms, so a ~1 s gap can only come from Retry-After.
        Assert.InRange(gap.TotalSeconds, 0.9, 5);
    }

    [Fact]
    public async Task Unreachable_endpoint_is_a_clear_error_naming_model_and_url()
    {
        // A port nothing listens on: bind one, note it, release it.
        var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        int port = ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        string url = $"http://127.0.0.1:{port}/v1";
        using var model = OpenAIModelFactory.Create(Options(url, retries: 1, topK: 2));
        var e = await Assert.ThrowsAsync<ConsortException>(() => model.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")]));
        Assert.Contains("flaky", e.Message);
        Assert.Contains(url, e.Message);
        var e2 = await Assert.ThrowsAsync<ConsortException>(async () => await model.Tokens!.StartAsync(model.Tokens.Tokenizer.Encode("x")));
        Assert.Contains(url, e2.Message);
    }

    [Fact]
    public async Task Api_key_comes_from_the_named_environment_variable_and_is_sent_as_bearer()
    {
        await using var stub = await StubServer.StartAsync((ctx, _) => StubServer.Json(ctx, Recorded.Read("llamacpp-chat-logprobs.json")));
        string env = "CONSORT_TEST_KEY_" + Guid.NewGuid().ToString("N")[..8];
        Environment.SetEnvironmentVariable(env, "sk-secret-123");
        try
        {
            var entry = JsonNode.Parse($$"""{"name":"x","type":"openai","base_url":"{{stub.BaseUrl}}","model":"m","api_key_env":"{{env}}","top_logprobs":0,"timeout_s":5,"max_retries":1}""")!.AsObject();
            using var model = OpenAIModelFactory.Create(OpenAIModelOptions.FromJson(entry, "default"));
            await model.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")]);
            Assert.Equal("Bearer sk-secret-123", stub.AuthHeaders[0]);
            Assert.Equal(ModelAccess.Text, model.Descriptor.Access);
            Assert.Null(model.Tokens);
        }
        finally { Environment.SetEnvironmentVariable(env, null); }
    }

    [Fact]
    public void Config_entry_validation_names_the_problem()
    {
        var ok = OpenAIModelOptions.FromJson(JsonNode.Parse("""{"type":"openai","base_url":"http://127.0.0.1:8080/v1","model":"m","top_logprobs":5,"price_input_per_million":0.15,"price_output_per_million":0.6,"timeout_s":60,"max_retries":3}""")!.AsObject(), "fallback");
        Assert.Equal("fallback", ok.Name);
        Assert.Equal(0.15m, ok.InputPricePerMillion);
        Assert.Equal(TimeSpan.FromSeconds(60), ok.Timeout);

        var unknown = Assert.Throws<ConfigException>(() => OpenAIModelOptions.FromJson(JsonNode.Parse("""{"name":"x","base_url":"http://h/v1","model":"m","temprature":1}""")!.AsObject(), "d"));
        Assert.Contains("'temprature'", unknown.Message);
        Assert.Contains("base_url", unknown.Message);
        Assert.Contains("top_logprobs", unknown.Message);

        var badType = Assert.Throws<ConfigException>(() => OpenAIModelOptions.FromJson(JsonNode.Parse("""{"name":"x","base_url":"http://h/v1","model":"m","top_logprobs":"five"}""")!.AsObject(), "d"));
        Assert.Contains("top_logprobs", badType.Message);
        var noUrl = Assert.Throws<ConfigException>(() => OpenAIModelOptions.FromJson(JsonNode.Parse("""{"name":"x","model":"m"}""")!.AsObject(), "d"));
        Assert.Contains("base_url", noUrl.Message);
        var tooMany = Assert.Throws<ConfigException>(() => OpenAIModelOptions.FromJson(JsonNode.Parse("""{"name":"x","base_url":"http://h/v1","model":"m","top_logprobs":50}""")!.AsObject(), "d"));
        Assert.Contains("0..20", tooMany.Message);
        var missingEnv = Assert.Throws<ConfigException>(() => OpenAIModelFactory.Create(new OpenAIModelOptions { Name = "x", BaseUrl = "http://h/v1", Model = "m", ApiKeyEnv = "CONSORT_SURELY_UNSET_VAR" }));
        Assert.Contains("CONSORT_SURELY_UNSET_VAR", missingEnv.Message);
    }

    [Fact]
    public async Task Circuit_breaker_opens_after_repeated_failures()
    {
        await using var stub = await StubServer.StartAsync((ctx, _) => StubServer.Json(ctx, "{}", 500));
        using var model = OpenAIModelFactory.Create(new OpenAIModelOptions
        {
            Name = "cb", BaseUrl = stub.BaseUrl, Model = "m", TopLogprobs = 0, MaxRetries = 0,
            BreakerMinimumThroughput = 2, BreakerFailureRatio = 0.5, BreakerBreakDuration = TimeSpan.FromSeconds(30),
        });
        ConsortException? last = null;
        for (int i = 0; i < 4; i++)
            last = await Assert.ThrowsAsync<ConsortException>(() => model.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")]));
        Assert.Contains("circuit breaker", last!.Message);
        Assert.True(stub.Attempts < 4, $"breaker should have stopped calls; attempts = {stub.Attempts}");
    }
}
