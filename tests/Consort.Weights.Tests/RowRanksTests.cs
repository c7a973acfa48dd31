using System.Runtime.InteropServices;
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

    /// <summary>
    /// The keep decisions bounded by buckets (the exact rank counted only where a bucket's bounds do not decide) are
    /// those of the full ranking, mask bits included, for rows that decide by bounds, by counting and by the sort.
    /// </summary>
    [Theory]
    [InlineData("random", 0)]
    [InlineData("f16-deltas", 5)]
    [InlineData("gaussian", 61)]
    [InlineData("ties", 3)]
    [InlineData("few-values", 0)]
    [InlineData("constant", 7)]
    public void KeepByBoundsDecidesAsTheFullRanking(string kind, int maskAt)
    {
        var r = new Random(11);
        var ranker = new RowRanks();
        ulong stream = ElementRandom.Stream(4, "blk.2.ffn_down.weight", 1);
        foreach (int n in new[] { 1, 7, 64, 100, 4096, 5003 })
            foreach (double eps in new[] { 0.15, 0.45 })
            {
                var row = Enumerable.Range(0, n).Select(_ => kind switch
                {
                    "random" => (float)((r.NextDouble() * 2 - 1) * Math.Exp(r.NextDouble() * 20 - 10)),
                    "f16-deltas" => (float)(Half)(float)(r.NextDouble() * 0.5 + 0.5) - (float)(Half)(float)(r.NextDouble() * 0.5 + 0.5),
                    "gaussian" => (float)(0.01 * Math.Sqrt(-2 * Math.Log(1 - r.NextDouble())) * Math.Cos(2 * Math.PI * r.NextDouble())),
                    "ties" => r.Next(-3, 4) * 0.25f,
                    "few-values" => r.Next(0, 40) * 0.001f,
                    _ => -1.5f,
                }).ToArray();
                double low = 0.5 - eps, step = n > 1 ? 2 * eps / (n - 1) : 0;
                long start = 1000L * n;
                var expected = MemoryMarshal.Cast<float, uint>(row.ToArray().AsSpan()).ToArray();
                var expectedMask = new ulong[(maskAt + n + 63) / 64 + 1];
                var ranks = new int[n];
                new RowRanks().Rank(row, ranks);
                ElementRandom.KeepByRank(stream, start, low, step, ranks, expected, expectedMask, maskAt);

                var bits = MemoryMarshal.Cast<float, uint>(row.ToArray().AsSpan()).ToArray();
                var mask = new ulong[expectedMask.Length];
                ranker.Keep(bits, stream, start, low, step, mask, maskAt, new int[n]);
                Assert.Equal(expected, bits);
                Assert.Equal(expectedMask, mask);
            }
        // Rows of 4096 continuous values are decided by bounds; constant ones (and rows under 64) are sorted.
        if (kind is "gaussian" or "random" or "f16-deltas" && System.Runtime.Intrinsics.X86.Avx2.IsSupported) Assert.True(ranker.BoundedRows > 0);
        Assert.True(ranker.SortedRows > 0);
        if (kind == "constant") Assert.Equal(0, ranker.BoundedRows);
    }
}
