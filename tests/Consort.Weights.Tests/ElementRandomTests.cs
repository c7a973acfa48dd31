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
}
