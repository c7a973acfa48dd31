namespace Consort;

/// <summary>Which kind of next-token distribution a backend produced.</summary>
public enum DistributionKind
{
    /// <summary>Raw logits over the whole vocabulary.</summary>
    FullLogits,
    /// <summary>Only the k most likely tokens with their log-probabilities.</summary>
    TopKLogprobs,
}

/// <summary>
/// A next-token distribution: full logits (local backends) or the top-k log-probabilities
/// (endpoints). <see cref="Kind"/> says which, so methods can require or approximate.
/// </summary>
public sealed class TokenDistribution
{
    private float[]? _logProbs;

    private TokenDistribution(DistributionKind kind, int vocabularySize, float[]? logits, int[]? ids, float[]? logprobs)
    {
        Kind = kind; VocabularySize = vocabularySize; Logits = logits; TopIds = ids; TopLogprobs = logprobs;
    }

    /// <summary>The kind of data held.</summary>
    public DistributionKind Kind { get; }
    /// <summary>Vocabulary size the ids index into.</summary>
    public int VocabularySize { get; }
    /// <summary>Logits (length = vocabulary) for <see cref="DistributionKind.FullLogits"/>.</summary>
    public float[]? Logits { get; }
    /// <summary>Token ids, most likely first, for <see cref="DistributionKind.TopKLogprobs"/>.</summary>
    public int[]? TopIds { get; }
    /// <summary>Log-probabilities matching <see cref="TopIds"/>.</summary>
    public float[]? TopLogprobs { get; }

    /// <summary>Wraps full logits (the array is owned by the distribution afterwards).</summary>
    public static TokenDistribution FromLogits(float[] logits) =>
        new(DistributionKind.FullLogits, logits.Length, logits, null, null);

    /// <summary>Wraps top-k log-probabilities.</summary>
    public static TokenDistribution FromTopK(int vocabularySize, int[] ids, float[] logprobs)
    {
        if (ids.Length != logprobs.Length) throw new ArgumentException("ids and logprobs differ in length");
        return new(DistributionKind.TopKLogprobs, vocabularySize, null, ids, logprobs);
    }

    /// <summary>
    /// Log-probabilities over the whole vocabulary. For top-k data the probability mass left over is
    /// spread evenly over the tokens not listed (the usual approximation).
    /// </summary>
    public float[] LogProbabilities()
    {
        if (_logProbs is not null) return _logProbs;
        var lp = new float[VocabularySize];
        if (Kind == DistributionKind.FullLogits)
        {
            TokenMath.LogSoftmax(Logits!, lp);
        }
        else
        {
            double listed = 0;
            foreach (var l in TopLogprobs!) listed += Math.Exp(l);
            int rest = VocabularySize - TopIds!.Length;
            double restMass = Math.Max(1e-12, 1 - listed);
            float fill = rest > 0 ? (float)Math.Log(restMass / rest) : float.NegativeInfinity;
            Array.Fill(lp, fill);
            for (int i = 0; i < TopIds.Length; i++) lp[TopIds[i]] = TopLogprobs[i];
        }
        return _logProbs = lp;
    }

    /// <summary>The most likely token.</summary>
    public int ArgMax()
    {
        if (Kind == DistributionKind.TopKLogprobs) return TopIds!.Length > 0 ? TopIds[0] : throw new InvalidOperationException("empty top-k distribution");
        return TokenMath.ArgMax(Logits!);
    }
}

/// <summary>Turns text into token ids and back.</summary>
public interface ITokenizer
{
    /// <summary>Number of tokens in the vocabulary.</summary>
    int VocabularySize { get; }
    /// <summary>Beginning-of-sequence token, if any.</summary>
    int? Bos { get; }
    /// <summary>Tokens that end generation (EOS, EOT, ...).</summary>
    IReadOnlySet<int> EndTokens { get; }
    /// <summary>Tokenizes text.</summary>
    int[] Encode(string text, bool addBos = false);
    /// <summary>Detokenizes a whole sequence.</summary>
    string Decode(IReadOnlyList<int> tokens);
}

/// <summary>
/// Token-level access to a model: incremental decoding with next-token distributions,
/// forking and rewinding sequences, and scoring continuations.
/// </summary>
public interface ITokenModel : IDisposable
{
    /// <summary>What the model is.</summary>
    ModelDescriptor Descriptor { get; }
    /// <summary>Its tokenizer.</summary>
    ITokenizer Tokenizer { get; }
    /// <summary>Which distribution kind <see cref="ITokenSequence.Next"/> holds.</summary>
    DistributionKind DistributionKind { get; }
    /// <summary>Counters of the work this model has done.</summary>
    UsageMeter Usage { get; }

    /// <summary>Starts a sequence from a prompt (non-empty) and computes the distribution after it.</summary>
    ValueTask<ITokenSequence> StartAsync(IReadOnlyList<int> prompt, CancellationToken cancellationToken = default);

    /// <summary>Appends one token to each of several sequences of this model in a single step
    /// (batched where the backend can).</summary>
    ValueTask StepAsync(IReadOnlyList<(ITokenSequence Sequence, int Token)> steps, CancellationToken cancellationToken = default);

    /// <summary>Log-likelihood of each token of <paramref name="continuation"/> after <paramref name="prompt"/>.</summary>
    ValueTask<float[]> ScoreAsync(IReadOnlyList<int> prompt, IReadOnlyList<int> continuation, CancellationToken cancellationToken = default);
}

/// <summary>One decoding sequence of an <see cref="ITokenModel"/>. Dispose to free its cache slot.</summary>
public interface ITokenSequence : IDisposable
{
    /// <summary>The model decoding this sequence.</summary>
    ITokenModel Model { get; }
    /// <summary>Tokens so far (prompt included).</summary>
    IReadOnlyList<int> Tokens { get; }
    /// <summary>Distribution of the next token after <see cref="Tokens"/>.</summary>
    TokenDistribution Next { get; }
    /// <summary>Feeds tokens and updates <see cref="Next"/>.</summary>
    ValueTask AppendAsync(IReadOnlyList<int> tokens, CancellationToken cancellationToken = default);
    /// <summary>An independent copy that shares the already computed prefix where the backend can.</summary>
    ValueTask<ITokenSequence> ForkAsync(CancellationToken cancellationToken = default);
    /// <summary>Keeps the first <paramref name="length"/> tokens (at least 1) and recomputes <see cref="Next"/>.</summary>
    ValueTask RewindAsync(int length, CancellationToken cancellationToken = default);
}
