using System.Text.Json;
using Consort.Middleware;
using Consort.Testing;
using Microsoft.Extensions.AI;

namespace Consort.Tests.Abstractions;

/// <summary>Trace, cost, logprob and answered-by accessors read values that went through JSON (a cache, a server) too.</summary>
public class AccessorsTests
{
    private static ChatResponse Sample()
    {
        var trace = new CallTrace();
        trace.Add(new TraceEntry { Model = "a", Role = "sample 1", Output = "x", InputTokens = 3, OutputTokens = 2, LatencyMs = 1.5, Cost = 0.25m, Data = new() { ["answer"] = "x" } });
        var r = new ChatResponse(new ChatMessage(ChatRole.Assistant, "x")).WithTrace(trace).WithTokenLogprobs([-0.5f, -0.25f]);
        r.AdditionalProperties![ConsortKeys.AnsweredBy] = "a";
        return r;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Accessors_read_objects_and_their_json_form(bool camelCase)
    {
        var original = Sample();
        ChatResponse back;
        if (camelCase) // a whole response through MEAI's JSON (what a distributed cache stores)
            back = JsonSerializer.Deserialize<ChatResponse>(JsonSerializer.Serialize(original, AIJsonUtilities.DefaultOptions), AIJsonUtilities.DefaultOptions)!;
        else
        {
            // the trace as results.jsonl and the server write it (snake_case)
            var snake = new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
            back = new ChatResponse(new ChatMessage(ChatRole.Assistant, "x")) { AdditionalProperties = new() };
            foreach (var (k, v) in original.AdditionalProperties!) back.AdditionalProperties[k] = JsonSerializer.SerializeToElement(v, snake);
        }
        foreach (var r in new[] { original, back })
        {
            var t = Assert.Single(r.GetTrace());
            Assert.Equal("a", t.Model);
            Assert.Equal(3, t.InputTokens);
            Assert.Equal(0.25m, t.Cost);
            Assert.Equal([-0.5f, -0.25f], r.GetTokenLogprobs()!);
            Assert.Equal(0.25m, r.GetCost());
            Assert.Equal("a", r.GetAnsweredBy());
        }
    }

    [Fact]
    public async Task Cost_middleware_prices_responses_and_streams_from_usage()
    {
        var d = new ModelDescriptor { Name = "priced", Access = ModelAccess.Text, InputPricePerMillion = 1_000_000m, OutputPricePerMillion = 2_000_000m };
        using var chat = new ChatClientBuilder(new ScriptedChatClient(_ => "four")).UseConsortCost(d).Build();
        var r = await chat.GetResponseAsync([new ChatMessage(ChatRole.User, "hi")]);
        Assert.Equal(2 * 1m + 4 * 2m, r.GetCost()); // 2 characters in, 4 out (the scripted client counts characters)
        var updates = await chat.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "hi")]).ToListAsync();
        Assert.Contains(updates, u => u.AdditionalProperties?.TryGetValue(ConsortKeys.Cost, out var c) == true && (decimal)c! == 10m);
        Assert.NotNull(chat.GetService(typeof(ScriptedChatClient)));
    }
}
