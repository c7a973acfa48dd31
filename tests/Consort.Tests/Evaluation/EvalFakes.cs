using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;

namespace Consort.Tests.Evaluation;

/// <summary>A chat client whose replies come from a function of the prompt and the call number (unit tests only).</summary>
internal sealed class ScriptedChatClient(Func<string, int, CancellationToken, Task<string>> reply) : IChatClient
{
    private int _calls;

    public int Calls => Volatile.Read(ref _calls);

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        int n = Interlocked.Increment(ref _calls);
        var prompt = messages.Last().Text;
        var text = await reply(prompt, n, cancellationToken);
        return new ChatResponse(new ChatMessage(ChatRole.Assistant, text))
        {
            Usage = new UsageDetails { InputTokenCount = prompt.Length, OutputTokenCount = text.Length },
        };
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var r = await GetResponseAsync(messages, options, cancellationToken);
        yield return new ChatResponseUpdate(ChatRole.Assistant, r.Text);
    }

    public object? GetService(Type serviceType, object? serviceKey = null) => null;

    public void Dispose() { }

    public static ConsortModel Model(string name, Func<string, int, CancellationToken, Task<string>> reply, ITokenModel? tokens = null) =>
        new(new ModelDescriptor { Name = name, Access = tokens is null ? ModelAccess.Text : ModelAccess.Text | ModelAccess.FullLogits, InputPricePerMillion = 1m },
            new ScriptedChatClient(reply), tokens);
}

/// <summary>Character tokenizer: token id = char code + 2, BOS = 1 (unit tests only).</summary>
internal sealed class CharTokenizer : ITokenizer
{
    public int VocabularySize => 258;
    public int? Bos => 1;
    public IReadOnlySet<int> EndTokens { get; } = new HashSet<int> { 0 };
    public int[] Encode(string text, bool addBos = false) =>
        (addBos ? new[] { 1 } : []).Concat(text.Select(c => Math.Min(255, (int)c) + 2)).ToArray();
    public string Decode(IReadOnlyList<int> tokens) => new(tokens.Where(t => t > 1).Select(t => (char)(t - 2)).ToArray());
}

/// <summary>A token model whose continuation log-probabilities come from a function of the continuation text.</summary>
internal sealed class FakeTokenModel(Func<string, float> perTokenLogprob) : ITokenModel
{
    public ModelDescriptor Descriptor { get; } = new() { Name = "fake-tokens", Access = ModelAccess.FullLogits };
    public ITokenizer Tokenizer { get; } = new CharTokenizer();
    public DistributionKind DistributionKind => DistributionKind.FullLogits;
    public UsageMeter Usage { get; } = new();
    public int ScoreCalls;

    public ValueTask<float[]> ScoreAsync(IReadOnlyList<int> prompt, IReadOnlyList<int> continuation, CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref ScoreCalls);
        var text = Tokenizer.Decode(continuation);
        return ValueTask.FromResult(Enumerable.Repeat(perTokenLogprob(text), continuation.Count).ToArray());
    }

    public ValueTask<ITokenSequence> StartAsync(IReadOnlyList<int> prompt, CancellationToken cancellationToken = default) => throw new NotSupportedException();
    public ValueTask StepAsync(IReadOnlyList<(ITokenSequence Sequence, int Token)> steps, CancellationToken cancellationToken = default) => throw new NotSupportedException();
    public void Dispose() { }
}
