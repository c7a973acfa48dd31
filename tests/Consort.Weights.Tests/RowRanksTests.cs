using Consort.Weights.Engine;

namespace Consort.Weights.Tests;

/// <summary>The radix ranks of a row's magnitudes against a stable sort, including rows where digits are skipped.</summary>
public class RowRanksTests
{
    [Theory]
    [InlineData("random")]
    [InlineData("f16-deltas")]
    [InlineData("ties")]
    [InlineData("constant")]
    public void RanksAreThoseOfAStableSortByMagnitude(string kind)
    {
        var r = new Random(7);
        var ranker = new RowRanks();
        foreach (int n in new[] { 1, 2, 63, 4096, 5000 })
        {
            var row = Enumerable.Range(0, n).Select(_ => kind switch
            {
                "random" => (float)((r.NextDouble() * 2 - 1) * Math.Exp(r.NextDouble() * 20 - 10)),
                // Differences of F16 values: the low mantissa bits are zero in every key, so the first digit is skipped.
                "f16-deltas" => (float)(Half)(float)(r.NextDouble() * 0.5 + 0.5) - (float)(Half)(float)(r.NextDouble() * 0.5 + 0.5),
                "ties" => r.Next(-3, 4) * 0.25f,
                _ => -1.5f,
            }).ToArray();
            var rank = new int[n];
            ranker.Rank(row, rank);
            var expected = new int[n];
            var order = Enumerable.Range(0, n).OrderBy(j => Math.Abs(row[j])).ThenBy(j => j).ToArray();
            for (int p = 0; p < n; p++) expected[order[p]] = p;
            Assert.Equal(expected, rank);
        }
    }
}
