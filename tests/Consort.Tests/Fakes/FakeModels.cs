using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;

namespace Consort.Tests.Fakes;

/// <summary>A scripted chat model for orchestration tests: replies (text and per-token logprobs) come from a function.</summary>
internal sealed class FakeChat(Func<string, ChatOptions?, int, (string Text, float[]? Logprobs)> reply) : IChatClient
{
    private int _calls;
    public int Calls => Volatile.Read(ref _calls);
    public List<ChatOptions?> Options { get; } = [];

    public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        int n = Interlocked.Increment(ref _calls);
        lock (Options) Options.Add(options);
        var prompt = messages.Last().Text;
        var (text, lp) = reply(prompt, options, n);
        var r = new ChatResponse(new ChatMessage(ChatRole.Assistant, text))
        {
            Usage = new UsageDetails { InputTokenCount = prompt.Length, OutputTokenCount = text.Length, TotalTokenCount = prompt.Length + text.Length },
        };
        if (lp is not null) r.WithTokenLogprobs(lp);
        return Task.FromResult(r);
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var r = await GetResponseAsync(messages, options, cancellationToken);
        yield return new ChatResponseUpdate(ChatRole.Assistant, r.Text);
    }

    public object? GetService(Type serviceType, object? serviceKey = null) => null;
    public void Dispose() { }

    /// <summary>A text-only model.</summary>
    public static ConsortModel Text(string name, Func<string, ChatOptions?, int, string> reply) =>
        new(new ModelDescriptor { Name = name, Access = ModelAccess.Text }, new FakeChat((p, o, n) => (reply(p, o, n), null)));

    /// <summary>A model whose answers carry token logprobs (confidence).</summary>
    public static ConsortModel WithLogprobs(string name, Func<string, (string, float[])> reply, ITokenModel? tokens = null, decimal? price = null) =>
        new(new ModelDescriptor { Name = name, Access = ModelAccess.Text | ModelAccess.TopKLogprobs, TopK = 5, InputPricePerMillion = price, OutputPricePerMillion = price },
            new FakeChat((p, _, _) => reply(p)), tokens);
}

/// <summary>A token model that only scores: every continuation token gets a fixed log-probability.</summary>
internal sealed class FixedScoreTokenModel(string name, Func<string, float> logprobOfText) : ITokenModel, ITokenizer
{
    public ModelDescriptor Descriptor { get; } = new() { Name = name, Access = ModelAccess.FullLogits };
    public ITokenizer Tokenizer => this;
    public DistributionKind DistributionKind => DistributionKind.FullLogits;
    public UsageMeter Usage { get; } = new();
    public int VocabularySize => 258;
    public int? Bos => 1;
    public IReadOnlySet<int> EndTokens { get; } = new HashSet<int> { 0 };
    public int[] Encode(string text, bool addBos = false) => (addBos ? new[] { 1 } : []).Concat(text.Select(c => (int)c % 256 + 2)).ToArray();
    public string Decode(IReadOnlyList<int> tokens) => new(tokens.Where(t => t > 1).Select(t => (char)(t - 2)).ToArray());
    public ValueTask<float[]> ScoreAsync(IReadOnlyList<int> prompt, IReadOnlyList<int> continuation, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(Enumerable.Repeat(logprobOfText(Decode(continuation)), continuation.Count).ToArray());
    public ValueTask<ITokenSequence> StartAsync(IReadOnlyList<int> prompt, CancellationToken cancellationToken = default) => throw new NotSupportedException();
    public ValueTask StepAsync(IReadOnlyList<(ITokenSequence Sequence, int Token)> steps, CancellationToken cancellationToken = default) => throw new NotSupportedException();
    public void Dispose() { }
}

/// <summary>Dev examples for fitting tests.</summary>
internal sealed class FakeDev(IEnumerable<string> prompts) : IFitData
{
    public IReadOnlyList<FitExample> Examples { get; } = prompts.Select((p, i) => new FitExample($"d{i}", [new ChatMessage(ChatRole.User, p)], "", _ => 0, s => s)).ToList();
}
