using Consort.Weights.Engine;

namespace Consort.Weights.Tests;

/// <summary>The branch-free random decisions (drop, DELLA's keep by rank) against the per-element tests they replace, and the sample drawn by gaps.</summary>
public class ElementRandomTests
{
    [Theory]
    [InlineData(0.0)]
    [InlineData(0.1)]
    [InlineData(0.5)]
    [InlineData(0.7)]
    [InlineData(1.0 / 3)]
    [InlineData(0.9999999)]
    [InlineData(1.0)]
    public void DropZeroesExactlyTheElementsWhoseUniformIsAtLeastTheKeepProbability(double keep)
    {
        ulong stream = ElementRandom.Stream(5, "blk.0.attn_q.weight", 1);
        var values = Enumerable.Range(0, 10007).Select(j => j + 1f).ToArray();
        ElementRandom.Drop(stream, 123, keep, values);
        int kept = 0;
        for (int j = 0; j < values.Length; j++)
        {
            bool expectKept = ElementRandom.Uniform(stream, 123 + j) < keep;
            Assert.Equal(expectKept ? j + 1f : 0f, values[j]);
            if (expectKept) kept++;
        }
        Assert.InRange(kept, keep * values.Length - 300, keep * values.Length + 300);
    }

    [Theory]
    [InlineData(0.01)]
    [InlineData(0.125)]
    [InlineData(0.7)]
    public void SampleByGapsIsABernoulliSampleInOrder(double keep)
    {
        ulong stream = ElementRandom.Stream(3, "t", 1);
        var values = Enumerable.Range(0, 200_000).Select(j => j + 1f).ToArray();
        var into = new float[values.Length];
        int m = ElementRandom.SampleByGaps(stream, 5000, keep, values, into);
        // Binomial count within 5 standard deviations, strictly increasing (in order, no repeats).
        double sd = Math.Sqrt(values.Length * keep * (1 - keep));
        Assert.InRange(m, values.Length * keep - 5 * sd, values.Length * keep + 5 * sd);
        for (int i = 1; i < m; i++) Assert.True(into[i] > into[i - 1]);
        // Memoryless: the share of kept elements right after a kept one is keep too.
        int next = 0;
        for (int i = 1; i < m; i++) if (into[i] == into[i - 1] + 1) next++;
        double sdNext = Math.Sqrt(m * keep * (1 - keep));
        Assert.InRange(next, m * keep - 5 * sdNext - 1, m * keep + 5 * sdNext + 1);
        // Reproducible for the same start, different for another.
        var again = new float[values.Length];
        Assert.Equal(m, ElementRandom.SampleByGaps(stream, 5000, keep, values, again));
        Assert.Equal(into.Take(m), again.Take(m));
        int other = ElementRandom.SampleByGaps(stream, 5001, keep, values, again);
        Assert.NotEqual(into.Take(m), again.Take(other));
    }

    [Fact]
    public void SampleByGapsAtTheEnds()
    {
        ulong stream = ElementRandom.Stream(3, "t", 1);
        var values = new float[] { 1, 2, 3 };
        var into = new float[3];
        Assert.Equal(0, ElementRandom.SampleByGaps(stream, 0, 0, values, into));
        Assert.Equal(3, ElementRandom.SampleByGaps(stream, 0, 1, values, into));
        Assert.Equal(values, into);
        Assert.Equal(0, ElementRandom.SampleByGaps(stream, 0, 0.5, [], into));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(61)]
    public void KeepByRankKeepsExactlyWhereTheUniformIsUnderTheRanksProbabilityAndMarksTheMask(int maskAt)
    {
        ulong stream = ElementRandom.Stream(7, "blk.1.ffn_up.weight", 2);
        const int n = 1003;
        var ranks = Enumerable.Range(0, n).Select(j => (j * 389) % n).ToArray(); // a permutation
        var bits = Enumerable.Range(0, n).Select(j => (uint)j + 1).ToArray();
        var mask = new ulong[(maskAt + n + 63) / 64];
        double low = 0.35, step = 0.3 / (n - 1);
        ElementRandom.KeepByRank(stream, 77, low, step, ranks, bits, mask, maskAt);
        int kept = 0;
        for (int j = 0; j < n; j++)
        {
            bool keep = ElementRandom.Uniform(stream, 77 + j) < low + step * ranks[j];
            Assert.Equal(keep ? (uint)j + 1 : 0u, bits[j]);
            Assert.Equal(keep, ((mask[(maskAt + j) >> 6] >> ((maskAt + j) & 63)) & 1) == 1);
            if (keep) kept++;
        }
        Assert.InRange(kept, 0.4 * n, 0.6 * n);
        // No bit outside [maskAt, maskAt + n).
        for (int b = 0; b < maskAt; b++) Assert.Equal(0UL, (mask[b >> 6] >> (b & 63)) & 1);
    }
}
