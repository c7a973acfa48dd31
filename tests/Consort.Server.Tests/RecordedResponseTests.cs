using System.Text.Json;
using Consort.OpenAI;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.AI;

namespace Consort.Server.Tests;

/// <summary>Response bodies written from vLLM's and llama.cpp's documented formats, parsed directly and through the backend.</summary>
public sealed class RecordedResponseTests
{
    [Fact]
    public void Vllm_legacy_completions_shape_parses_with_null_first_logprob_and_sorted_alternatives()
    {
        var r = CompletionsClient.Parse(Recorded.Read("vllm-completions-echo.json"), "m");
        Assert.Equal("Once upon a time, there", r.Text);
        Assert.Equal(6, r.Logprobs.Count);
        Assert.Null(r.Logprobs[0].Logprob);
        Assert.Equal(" upon", r.Logprobs[1].Token);
        Assert.Equal(-2.5318f, r.Logprobs[1].Logprob!.Value, 4);
        Assert.Equal([",", " upon"], r.Logprobs[1].Top.Select(t => t.Token));
        Assert.Equal(17, r.Logprobs[5].TextOffset);
        Assert.Equal(5, r.PromptTokens);
        Assert.Equal(1, r.CompletionTokens);
        Assert.Equal("length", r.FinishReason);
    }

    [Fact]
    public void Llamacpp_chat_style_completions_shape_parses()
    {
        var r = CompletionsClient.Parse(Recorded.Read("llamacpp-completions-chatstyle.json"), "m");
        var t = Assert.Single(r.Logprobs);
        Assert.Equal(" there", t.Token);
        Assert.Equal(-0.2231f, t.Logprob!.Value, 4);
        Assert.Equal([" there", " in", " the"], t.Top.Select(x => x.Token));
        Assert.Equal(6, r.PromptTokens);
    }

    [Theory]
    [InlineData("vllm-chat-logprobs.json", new[] { "Paris", "." }, new[] { -0.0009f, -0.1325f })]
    [InlineData("llamacpp-chat-logprobs.json", new[] { " Lily" }, new[] { -0.0512f })]
    public void Chat_logprob_shape_parses(string file, string[] tokens, float[] logprobs)
    {
        using var doc = JsonDocument.Parse(Recorded.Read(file));
        var lps = LogprobParser.Parse(doc.RootElement.GetProperty("choices")[0].GetProperty("logprobs"));
        Assert.Equal(tokens, lps.Select(l => l.Token));
        Assert.Equal(logprobs, lps.Select(l => l.Logprob!.Value));
        Assert.All(lps, l => Assert.True(l.Top.Count >= 2));
    }

    [Fact]
    public void Unknown_logprob_shape_is_a_clear_error()
    {
        using var doc = JsonDocument.Parse("""{"bogus":[1]}""");
        var e = Assert.Throws<FormatException>(() => LogprobParser.Parse(doc.RootElement));
        Assert.Contains("content", e.Message);
        var ce = Assert.Throws<ConsortException>(() => CompletionsClient.Parse("""{"choices":[]}""", "mymodel"));
        Assert.Contains("mymodel", ce.Message);
    }

    [Fact]
    public async Task Chat_through_backend_requests_logprobs_and_attaches_them_with_usage_and_cost()
    {
        await using var stub = await StubServer.StartAsync((ctx, _) => StubServer.Json(ctx, Recorded.Read("vllm-chat-logprobs.json")));
        using var model = OpenAIModelFactory.Create(new OpenAIModelOptions
        {
            Name = "vllm", BaseUrl = stub.BaseUrl, Model = "Qwen/Qwen2.5-0.5B-Instruct", TopLogprobs = 3,
            InputPricePerMillion = 1m, OutputPricePerMillion = 2m,
        });
        var r = await model.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "Capital of France?")], new ChatOptions { Temperature = 0 }.RequestingLogprobs());
        Assert.Equal("Paris.", r.Text);
        Assert.Equal([-0.0009f, -0.1325f], r.GetTokenLogprobs());
        Assert.Equal(24, r.Usage!.InputTokenCount);
        Assert.Equal(24m / 1_000_000m + 2m * 2 / 1_000_000m, r.GetCost());
        using var sent = JsonDocument.Parse(stub.Bodies[0]);
        Assert.True(sent.RootElement.GetProperty("logprobs").GetBoolean());
        Assert.Equal(3, sent.RootElement.GetProperty("top_logprobs").GetInt32());
        Assert.Equal(ModelAccess.Text | ModelAccess.TopKLogprobs, model.Descriptor.Access);
        Assert.Equal(3, model.Descriptor.TopK);
    }

    [Fact]
    public async Task Chat_without_logprob_request_sends_none()
    {
        await using var stub = await StubServer.StartAsync((ctx, _) => StubServer.Json(ctx, Recorded.Read("llamacpp-chat-logprobs.json")));
        using var model = OpenAIModelFactory.Create(new OpenAIModelOptions { Name = "l", BaseUrl = stub.BaseUrl, Model = "m" });
        var r = await model.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")]);
        Assert.Equal(" Lily", r.Text);
        Assert.Null(r.GetTokenLogprobs());
        Assert.False(JsonDocument.Parse(stub.Bodies[0]).RootElement.TryGetProperty("logprobs", out _));
    }

    [Fact]
    public async Task Token_model_reads_next_token_top_k_from_chat_style_completions()
    {
        await using var stub = await StubServer.StartAsync((ctx, _) => StubServer.Json(ctx, Recorded.Read("llamacpp-completions-chatstyle.json")));
        using var model = OpenAIModelFactory.Create(new OpenAIModelOptions { Name = "lc", BaseUrl = stub.BaseUrl, Model = "stories", TopLogprobs = 3, Vocabulary = "recorded-test-1" });
        var tm = model.Tokens!;
        Assert.Equal(DistributionKind.TopKLogprobs, tm.DistributionKind);
        using var seq = await tm.StartAsync(tm.Tokenizer.Encode("Once upon a time,"));
        Assert.Equal(" there", tm.Tokenizer.Decode([seq.Next.ArgMax()]));
        Assert.Equal(3, seq.Next.TopIds!.Length);
        Assert.Equal([" there", " in", " the"], seq.Next.TopIds.Select(i => tm.Tokenizer.Decode([i])));
        using var sent = JsonDocument.Parse(stub.Bodies[0]);
        Assert.Equal("Once upon a time,", sent.RootElement.GetProperty("prompt").GetString());
        Assert.Equal(1, sent.RootElement.GetProperty("max_tokens").GetInt32());
        Assert.Equal(3, sent.RootElement.GetProperty("logprobs").GetInt32());
        // Appending re-sends the whole text (endpoints keep no state).
        await seq.AppendAsync([seq.Next.ArgMax()]);
        Assert.Equal("Once upon a time, there", JsonDocument.Parse(stub.Bodies[1]).RootElement.GetProperty("prompt").GetString());
        Assert.Equal(2, tm.Usage.Calls);
    }

    [Fact]
    public async Task Token_model_scores_continuation_from_echoed_legacy_logprobs()
    {
        await using var stub = await StubServer.StartAsync((ctx, _) => StubServer.Json(ctx, Recorded.Read("vllm-completions-echo.json")));
        using var model = OpenAIModelFactory.Create(new OpenAIModelOptions { Name = "v", BaseUrl = stub.BaseUrl, Model = "llama", TopLogprobs = 2, Vocabulary = "recorded-test-2" });
        var tok = model.Tokens!.Tokenizer;
        var scores = await model.Tokens.ScoreAsync(tok.Encode("Once upon a time"), [.. tok.Encode(","), .. tok.Encode(" there")]);
        Assert.Equal([-0.4127f, -0.8833f], scores);
        using var sent = JsonDocument.Parse(stub.Bodies[0]);
        Assert.True(sent.RootElement.GetProperty("echo").GetBoolean());
        Assert.Equal("Once upon a time, there", sent.RootElement.GetProperty("prompt").GetString());
    }

    [Fact]
    public async Task Streaming_chat_through_backend_carries_logprobs_usage_and_cost()
    {
        await using var stub = await StubServer.StartAsync(async (ctx, _) =>
        {
            ctx.Response.ContentType = "text/event-stream";
            await ctx.Response.WriteAsync(Recorded.Read("vllm-chat-stream-logprobs.sse"));
        });
        using var model = OpenAIModelFactory.Create(new OpenAIModelOptions
        {
            Name = "vllm", BaseUrl = stub.BaseUrl, Model = "Qwen/Qwen2.5-0.5B-Instruct", TopLogprobs = 1, InputPricePerMillion = 1m, OutputPricePerMillion = 2m,
        });
        var updates = await model.Chat.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "Capital of France?")], new ChatOptions().RequestingLogprobs()).ToListAsync();
        Assert.Equal("Paris.", string.Concat(updates.Select(u => u.Text)));
        var lps = updates.Select(u => u.AdditionalProperties?.TryGetValue(TokenLogprobExtensions.LogprobsKey, out var v) == true ? (float[])v! : null)
            .Where(x => x is not null).SelectMany(x => x!).ToArray();
        Assert.Equal([-0.0009f, -0.1325f], lps);
        Assert.Contains(updates, u => u.AdditionalProperties?.TryGetValue(ConsortResponseExtensions.CostKey, out var c) == true && (decimal)c! == 28m / 1_000_000m);
        using var sent = JsonDocument.Parse(stub.Bodies[0]);
        Assert.True(sent.RootElement.GetProperty("stream").GetBoolean());
        Assert.True(sent.RootElement.GetProperty("logprobs").GetBoolean());
    }

    [Fact]
    public async Task Caller_cancellation_is_not_reported_as_an_endpoint_failure()
    {
        await using var stub = await StubServer.StartAsync(async (ctx, _) => await Task.Delay(Timeout.Infinite, ctx.RequestAborted));
        using var model = OpenAIModelFactory.Create(new OpenAIModelOptions { Name = "c", BaseUrl = stub.BaseUrl, Model = "m", TopLogprobs = 0 });
        using var cts = new CancellationTokenSource(300);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => model.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")], cancellationToken: cts.Token));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5));
    }
}
