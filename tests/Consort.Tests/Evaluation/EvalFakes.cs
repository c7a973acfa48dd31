
namespace Consort.Tests.Evaluation;

/// <summary>Character tokenizer: token id = char code + 2, BOS = 1 (unit tests only).</summary>
/// <remarks>For scoring-only tests: it cannot decode (use the test kit's TableTokenModel for that).</remarks>
internal sealed class ScoreTokenizer : ITokenizer
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
    public ITokenizer Tokenizer { get; } = new ScoreTokenizer();
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
