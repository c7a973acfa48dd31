namespace Consort.Decoding;

/// <summary>
/// Picks the next token from a distribution: greedy at temperature 0, otherwise softmax(logprob / T)
/// restricted by top-k and top-p, drawn with a caller-supplied (seeded) <see cref="Random"/> so the
/// same seed gives the same tokens.
/// </summary>
public sealed class TokenSampler
{
    private readonly Random _random;
    private float[] _work = [];
    private int[] _order = [];

    /// <summary>Creates a sampler.</summary>
    /// <param name="temperature">0 (or less) = greedy.</param>
    /// <param name="topK">Keep only the k most likely tokens (null or 0 = all).</param>
    /// <param name="topP">Keep the smallest set of most likely tokens whose mass reaches p (null or 1 = all).</param>
    /// <param name="random">Source of randomness; seed it for reproducible output.</param>
    public TokenSampler(float temperature, int? topK, float? topP, Random random)
    {
        if (topP is { } p && (p <= 0 || p > 1)) throw new ArgumentOutOfRangeException(nameof(topP), $"top-p must be in (0, 1], got {p}");
        if (topK is < 0) throw new ArgumentOutOfRangeException(nameof(topK), $"top-k must not be negative, got {topK}");
        Temperature = temperature; TopK = topK; TopP = topP; _random = random;
    }

    /// <summary>Temperature (0 = greedy).</summary>
    public float Temperature { get; }
    /// <summary>Top-k cut, if any.</summary>
    public int? TopK { get; }
    /// <summary>Top-p (nucleus) cut, if any.</summary>
    public float? TopP { get; }

    /// <summary>Draws a token from <paramref name="distribution"/>.</summary>
    public int Sample(TokenDistribution distribution) =>
        Temperature <= 0 ? distribution.ArgMax() : Sample(distribution.LogProbabilities());

    /// <summary>Draws a token from log-probabilities (or logits: only differences matter).</summary>
    public int Sample(ReadOnlySpan<float> logProbs)
    {
        if (logProbs.Length == 0) throw new ArgumentException("empty distribution");
        if (Temperature <= 0) return TokenMath.ArgMax(logProbs);
        int n = logProbs.Length;
        if (_work.Length != n) { _work = new float[n]; _order = new int[n]; }
        TokenMath.Softmax(logProbs, _work, Temperature);
        int k = TopK is > 0 and var kk && kk < n ? kk : n;
        bool nucleus = TopP is { } p && p < 1;
        if (k == n && !nucleus) return Draw(_work, null, n, 1.0);
        // Sort token ids by probability (descending; ties by id for determinism), then cut.
        for (int i = 0; i < n; i++) _order[i] = i;
        var w = _work;
        Array.Sort(_order, (a, b) => w[b].CompareTo(w[a]) is var c && c != 0 ? c : a.CompareTo(b));
        int keep = k;
        double mass = 0;
        if (nucleus)
        {
            double target = TopP!.Value;
            for (int i = 0; i < k; i++)
            {
                mass += w[_order[i]];
                if (mass >= target) { keep = i + 1; break; }
            }
        }
        mass = 0;
        for (int i = 0; i < keep; i++) mass += w[_order[i]];
        return Draw(w, _order, keep, mass);
    }

    private int Draw(float[] probs, int[]? order, int count, double mass)
    {
        double u = _random.NextDouble() * mass, acc = 0;
        int last = 0;
        for (int i = 0; i < count; i++)
        {
            int id = order is null ? i : order[i];
            if (probs[id] <= 0) continue;
            acc += probs[id];
            last = id;
            if (u < acc) return id;
        }
        return last; // rounding: u landed at the very top
    }
}
