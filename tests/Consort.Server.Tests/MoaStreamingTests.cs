using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Consort.LlamaCpp;
using Consort.Methods.Text;
using Consort.Testing;
using Microsoft.Extensions.AI;

namespace Consort.Server.Tests;

/// <summary>
/// mixture_of_agents served over real HTTP on loopback: the aggregator's tokens leave the server as SSE chunks while it
/// is still writing (a scripted aggregator held at a gate), and a MoA of the real zoo experts streams the same answer it
/// gives without streaming.
/// </summary>
public class MoaStreamingTests
{
    private const string ZooPrompts = """{"propose": "{question}", "propose_with_references": "{references_inline}\n{question}", "aggregate": "{references_inline}\n{question}"}""";

    [Fact]
    public async Task The_first_aggregator_chunk_reaches_the_http_client_before_the_aggregator_finishes()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var aggregator = new ConsortModel(new ModelDescriptor { Name = "g", Access = ModelAccess.Text }, new SlowAggregator(gate.Task));
        var a = ScriptedChatClient.Model("a", c => "55");
        var b = ScriptedChatClient.Model("b", c => "unknown");
        var moa = await MethodHarness.CreateAsync(new MixtureOfAgentsMethod(), [a, b, aggregator],
            """{"layers": 2, "proposers": ["a", "b"], "aggregator": "g", "prompts": {"propose": "{question}", "propose_with_references": "R:{references_inline}|{question}", "aggregate": "A:{references_inline}|{question}"}}""",
            name: "moa");
        await using var server = await RunningServer.StartAsync([moa]);

        var body = new JsonObject
        {
            ["model"] = "moa", ["stream"] = true, ["consort_trace"] = true,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Q: 7+48= A:" }),
        };
        using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        using var resp = await server.Http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(200, (int)resp.StatusCode);
        Assert.Equal("text/event-stream", resp.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync());

        async Task<JsonNode?> NextEventAsync()
        {
            while (await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30)) is { } line)
                if (line.StartsWith("data: ")) return line[6..] == "[DONE]" ? null : JsonNode.Parse(line[6..]);
            throw new InvalidOperationException("the stream ended without [DONE]");
        }
        string? Content(JsonNode e) => e["choices"]![0]!["delta"]!["content"]?.GetValue<string>();

        // The role chunk, then the aggregator's first piece: over the wire while the aggregator waits at its gate.
        var role = await NextEventAsync();
        Assert.Equal("", Content(role!));
        var first = await NextEventAsync();
        Assert.Equal("55", Content(first!));
        Assert.False(gate.Task.IsCompleted);
        // Proposers ran in full before: the aggregator was asked with the second layer's shown answers only.
        Assert.Equal(new[] { "Q: 7+48= A:", "R:55|Q: 7+48= A:" }, ScriptedChatClient.Of(a).Calls.Select(c => c.Prompt));

        gate.SetResult();
        var events = new List<JsonNode>();
        while (await NextEventAsync() is { } e) events.Add(e);
        var text = "55" + string.Concat(events.Select(Content).Where(c => c is not null));
        Assert.Equal("55 is the sum", text);
        var last = events[^1];
        Assert.Equal("stop", last["choices"]![0]!["finish_reason"]!.GetValue<string>());
        var roles = last["consort_trace"]!.AsArray().Select(t => t!["role"]!.GetValue<string>()).ToList();
        Assert.Equal(["round 0 / propose", "round 1 / propose_with_references", "aggregate"], roles.Distinct());
        Assert.True(last["usage"]!["completion_tokens"]!.GetValue<long>() > 0);
    }

    [Fact]
    public async Task A_moa_of_the_zoo_experts_streams_over_http_the_answer_it_gives_without_streaming()
    {
        string Zoo(string name) => Path.Combine(TestPaths.RepoRoot, "zoo", name + ".gguf");
        var members = new[] { "arith", "facts_a", "facts_b" }
            .Select(n => LlamaModelFactory.Load(new LlamaModelOptions { Path = Zoo(n), Name = n, ContextSize = 128, Seed = 1 })).ToList();
        try
        {
            var moa = await MethodHarness.CreateAsync(new MixtureOfAgentsMethod(), members, $$"""{"layers": 2, "aggregator": "arith", "prompts": {{ZooPrompts}}}""", name: "moa");
            await using var server = await RunningServer.StartAsync([moa]);
            JsonObject Body(bool stream) => new()
            {
                ["model"] = "moa", ["stream"] = stream, ["max_tokens"] = 8, ["temperature"] = 0, ["stop"] = new JsonArray("\n"),
                ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Q: 7+48= A:" }),
            };
            var (status, json) = await server.PostAsync("/v1/chat/completions", Body(false));
            Assert.Equal(200, status);
            string whole = json!["choices"]![0]!["message"]!["content"]!.GetValue<string>();

            var sw = Stopwatch.StartNew();
            var arrivals = new List<(double Ms, string Piece)>();
            using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(Body(true).ToJsonString(), Encoding.UTF8, "application/json") };
            using var resp = await server.Http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
            using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync());
            string? finish = null;
            while (await reader.ReadLineAsync() is { } line)
            {
                if (!line.StartsWith("data: ") || line == "data: [DONE]") continue;
                var choice = JsonNode.Parse(line[6..])!["choices"]![0]!;
                if (choice["delta"]!["content"]?.GetValue<string>() is { Length: > 0 } piece) arrivals.Add((sw.Elapsed.TotalMilliseconds, piece));
                finish ??= choice["finish_reason"]?.GetValue<string>();
            }
            Assert.Equal("stop", finish);
            Assert.Equal(whole, string.Concat(arrivals.Select(a => a.Piece)));
            // Byte-level vocabulary: the aggregator's answer arrives in several pieces, in order, not as one block at the end.
            Assert.True(arrivals.Count >= 2, $"one piece only: '{whole}'");
            Assert.True(arrivals[0].Ms <= arrivals[^1].Ms);
            Assert.Equal("55", whole.Trim());
        }
        finally
        {
            foreach (var m in members) m.Dispose();
        }
    }

    /// <summary>An aggregator that writes "55", then waits for the gate, then " is the sum".</summary>
    private sealed class SlowAggregator(Task gate) : IChatClient
    {
        public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
            throw new NotSupportedException("the aggregator is only streamed here");

        public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
            [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            Assert.Equal("A:55|Q: 7+48= A:", messages.Last().Text);
            yield return new ChatResponseUpdate(ChatRole.Assistant, "55");
            await gate.WaitAsync(cancellationToken);
            foreach (var piece in new[] { " is", " the", " sum" })
            {
                await Task.Delay(20, cancellationToken);
                yield return new ChatResponseUpdate(ChatRole.Assistant, piece);
            }
            yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(new UsageDetails { InputTokenCount = 16, OutputTokenCount = 4 })]) { FinishReason = ChatFinishReason.Stop };
        }

        public object? GetService(Type serviceType, object? serviceKey = null) => null;
        public void Dispose() { }
    }
}
