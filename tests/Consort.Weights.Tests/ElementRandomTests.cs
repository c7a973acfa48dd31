using Consort.Weights.Engine;

namespace Consort.Weights.Tests;

/// <summary>The branch-free random drop against the per-element test it replaces.</summary>
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
    [InlineData(0.0)]
    [InlineData(0.3)]
    [InlineData(1.0)]
    public void SampleKeepsInOrderTheElementsDropWouldKeep(double keep)
    {
        ulong stream = ElementRandom.Stream(9, "t", 0);
        var values = Enumerable.Range(0, 3001).Select(j => j + 1f).ToArray();
        var into = new float[values.Length];
        int m = ElementRandom.Sample(stream, 40, keep, values, into);
        var expected = values.Where((_, j) => ElementRandom.Uniform(stream, 40 + j) < keep).ToArray();
        Assert.Equal(expected, into.Take(m).ToArray());
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
}
