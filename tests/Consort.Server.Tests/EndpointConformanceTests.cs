using Consort.OpenAI;
using Consort.Testing;
using Microsoft.Extensions.AI;

namespace Consort.Server.Tests;

/// <summary>A Consort server on loopback serving stories260k, and Consort's OpenAI backend pointed at it.</summary>
internal sealed class LoopbackEndpoint : IDisposable
{
    private readonly ConsortModel _local;
    private readonly RunningServer _server;

    public LoopbackEndpoint()
    {
        _local = Consort.LlamaCpp.LlamaModelFactory.Load(new Consort.LlamaCpp.LlamaModelOptions { Path = TestPaths.Stories260K, Name = "stories260k", ContextSize = 512, Seed = 1 });
        _server = RunningServer.StartAsync([_local], key: null).GetAwaiter().GetResult();
        Remote = OpenAIModelFactory.Create(new OpenAIModelOptions
        {
            Name = "remote", BaseUrl = _server.Url + "/v1", Model = "stories260k", TopLogprobs = 5, MaxRetries = 0,
            Timeout = TimeSpan.FromSeconds(30), Vocabulary = "conformance-" + Guid.NewGuid().ToString("N"),
        });
    }

    public ConsortModel Remote { get; }

    public void Dispose()
    {
        Remote.Dispose();
        _server.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _local.Dispose();
    }
}

/// <summary>The endpoint token model (top-k logprobs over HTTP) keeps the token-model contract.</summary>
public sealed class EndpointTokenModelConformance : TokenModelConformance
{
    protected override double Tolerance => 2e-3; // logprobs travel as JSON numbers
    protected override int[] PromptIds(ITokenModel m) => [.. m.Tokenizer.Encode("Once"), .. m.Tokenizer.Encode(" upon a"), .. m.Tokenizer.Encode(" time")];

    protected override ITokenModel CreateModel()
    {
        var endpoint = new LoopbackEndpoint();
        return new Owned(endpoint.Remote.Tokens!, endpoint);
    }

    private sealed class Owned(ITokenModel inner, IDisposable owner) : ITokenModel
    {
        public ModelDescriptor Descriptor => inner.Descriptor;
        public ITokenizer Tokenizer => inner.Tokenizer;
        public DistributionKind DistributionKind => inner.DistributionKind;
        public UsageMeter Usage => inner.Usage;
        public ValueTask<ITokenSequence> StartAsync(IReadOnlyList<int> prompt, CancellationToken ct = default) => inner.StartAsync(prompt, ct);
        public ValueTask StepAsync(IReadOnlyList<(ITokenSequence Sequence, int Token)> steps, CancellationToken ct = default) => inner.StepAsync(steps, ct);
        public ValueTask<float[]> ScoreAsync(IReadOnlyList<int> prompt, IReadOnlyList<int> continuation, CancellationToken ct = default) => inner.ScoreAsync(prompt, continuation, ct);
        public void Dispose() => owner.Dispose();
    }
}

/// <summary>The endpoint chat client keeps the chat-client contract.</summary>
public sealed class EndpointChatClientConformance : ChatClientConformance
{
    protected override IChatClient CreateClient()
    {
        var endpoint = new LoopbackEndpoint();
        return new OwnedChat(endpoint.Remote.Chat, endpoint);
    }

    private sealed class OwnedChat(IChatClient inner, IDisposable owner) : DelegatingChatClient(inner)
    {
        protected override void Dispose(bool disposing) { base.Dispose(disposing); owner.Dispose(); }
    }
}

/// <summary>The server's completions run the shared decode loop, so top_k is honoured.</summary>
public sealed class CompletionsTopKTests(StoriesFixture fx) : IClassFixture<StoriesFixture>
{
    [Fact]
    public async Task Top_k_of_one_samples_the_greedy_text_at_any_temperature()
    {
        await using var s = await RunningServer.StartAsync([fx.Model]);
        async Task<string> Complete(System.Text.Json.Nodes.JsonObject extra)
        {
            var body = new System.Text.Json.Nodes.JsonObject { ["model"] = "stories260k", ["prompt"] = "Once upon a time", ["max_tokens"] = 24 };
            foreach (var (k, v) in extra) body[k] = v?.DeepClone();
            var (status, json) = await s.PostAsync("/v1/completions", body);
            Assert.Equal(200, status);
            return json!["choices"]![0]!["text"]!.GetValue<string>();
        }
        var greedy = await Complete(new() { ["temperature"] = 0 });
        var hot = new List<string>();
        for (int seed = 1; seed <= 4; seed++) hot.Add(await Complete(new() { ["temperature"] = 2.0, ["seed"] = seed }));
        var topOne = new List<string>();
        for (int seed = 1; seed <= 4; seed++) topOne.Add(await Complete(new() { ["temperature"] = 2.0, ["seed"] = seed, ["top_k"] = 1 }));
        Assert.Contains(hot, t => t != greedy); // the temperature alone does change the text
        Assert.All(topOne, t => Assert.Equal(greedy, t));
    }

    [Fact]
    public async Task A_stop_string_spanning_tokens_never_reaches_the_stream()
    {
        await using var s = await RunningServer.StartAsync([fx.Model]);
        var body = new System.Text.Json.Nodes.JsonObject { ["model"] = "stories260k", ["prompt"] = "Once upon a time", ["max_tokens"] = 40, ["temperature"] = 0 };
        var (_, whole) = await s.PostAsync("/v1/completions", body);
        string full = whole!["choices"]![0]!["text"]!.GetValue<string>();
        Assert.Contains(" little girl", full);
        body["stop"] = " little girl";
        body["stream"] = true;
        var events = await s.PostStreamAsync("/v1/completions", body);
        var streamed = string.Concat(events.Where(e => e != "[DONE]").Select(e => System.Text.Json.Nodes.JsonNode.Parse(e)!["choices"]![0]!["text"]!.GetValue<string>()));
        Assert.Equal(full[..full.IndexOf(" little girl", StringComparison.Ordinal)], streamed);
    }
}
