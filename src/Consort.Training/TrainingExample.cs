namespace Consort.Training;

/// <summary>One tokenized example: <c>Counts[i]</c> says whether predicting <c>Tokens[i]</c> (from the tokens before it) is trained.</summary>
public sealed record TrainingExample(int[] Tokens, bool[] Counts)
{
    /// <summary>Plain text, wrapped in BOS/EOS; every prediction counts.</summary>
    public static TrainingExample FromText(string text)
    {
        var t = new[] { ByteTokenizer.Bos }.Concat(ByteTokenizer.Encode(text)).Append(ByteTokenizer.Eos).ToArray();
        var c = new bool[t.Length];
        Array.Fill(c, true);
        c[0] = false;
        return new(t, c);
    }

    /// <summary>A prompt/answer pair, wrapped in BOS/EOS; with <paramref name="answerOnly"/> only the answer and EOS count.</summary>
    public static TrainingExample FromPair(string prompt, string answer, bool answerOnly)
    {
        var p = ByteTokenizer.Encode(prompt);
        var a = ByteTokenizer.Encode(answer);
        var t = new[] { ByteTokenizer.Bos }.Concat(p).Concat(a).Append(ByteTokenizer.Eos).ToArray();
        var c = new bool[t.Length];
        for (int i = 1; i < t.Length; i++) c[i] = !answerOnly || i > p.Length;
        return new(t, c);
    }
}

/// <summary>
/// Packs examples drawn from a source into fixed windows: each window starts at an example boundary and is filled with
/// whole examples (the last one may be cut). Deterministic for a seed.
/// </summary>
public sealed class BatchSampler(Func<Random, TrainingExample> source, int batch, int seqLen, int seed)
{
    private readonly Random _rng = new(seed);

    /// <summary>The next batch.</summary>
    public TrainingBatch Next()
    {
        int n = batch * seqLen;
        var inputs = new int[n]; var targets = new int[n]; var mask = new float[n];
        var window = new List<int>(seqLen + 64); var counts = new List<bool>(seqLen + 64);
        for (int b = 0; b < batch; b++)
        {
            window.Clear(); counts.Clear();
            while (window.Count < seqLen + 1)
            {
                var ex = source(_rng);
                window.AddRange(ex.Tokens); counts.AddRange(ex.Counts);
            }
            for (int i = 0; i < seqLen; i++)
            {
                inputs[b * seqLen + i] = window[i];
                targets[b * seqLen + i] = window[i + 1];
                mask[b * seqLen + i] = counts[i + 1] ? 1f : 0f;
            }
        }
        // A batch with nothing to learn cannot happen with real sources; guard anyway so the loss stays defined.
        if (mask.All(m => m == 0)) mask[^1] = 1f;
        return new(inputs, targets, mask);
    }

    /// <summary>Weighted mixture of sources.</summary>
    public static Func<Random, TrainingExample> Mix(params (double Weight, Func<Random, TrainingExample> Source)[] parts)
    {
        double total = parts.Sum(p => p.Weight);
        return rng =>
        {
            double r = rng.NextDouble() * total;
            foreach (var (w, s) in parts) { if ((r -= w) < 0) return s(rng); }
            return parts[^1].Source(rng);
        };
    }
}
