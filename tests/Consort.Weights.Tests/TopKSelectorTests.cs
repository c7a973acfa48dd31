using System.Runtime.InteropServices;
using Consort.Weights.Engine;

namespace Consort.Weights.Tests;

/// <summary>The sampled selection (estimate a bucket range, scan it once, select exactly) against the exact build.</summary>
public class TopKSelectorTests
{
    private static float[] Values(int n, int seed, bool coarse)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, n).Select(_ =>
        {
            float v = (float)((r.NextDouble() * 2 - 1) * Math.Exp(r.NextDouble() * 4));
            return coarse ? MathF.Round(v * 16) / 16 : v;
        }).ToArray();
    }

    [Theory]
    [InlineData(false, 0.5)]
    [InlineData(true, 0.5)]
    [InlineData(true, 0.1)]
    [InlineData(false, 0.97)]
    public void SampledSelectionEqualsTheExactOne(bool coarse, double density)
    {
        var v = Values(200_000, 3, coarse);
        long k = (long)(density * v.Length);
        var exact = TopKSelector.Build(k, v);
        // Sample every 8th block of 1000, as the merge does.
        var sample = new long[TopKSelector.HighBuckets];
        var h = new int[TopKSelector.HighBuckets];
        long m = 0;
        for (int s = 0; s < v.Length; s += 8000) { TopKSelector.AddHighHistogram(MemoryMarshal.Cast<float, uint>(v.AsSpan(s, 1000)), h); m += 1000; }
        for (int b = 0; b < h.Length; b++) sample[b] = h[b];
        var (lo, hi) = TopKSelector.EstimateRange(k, v.Length, sample, m);
        long above = 0;
        var inside = new List<uint>();
        var buffer = new uint[1000];
        for (int s = 0; s < v.Length; s += 1000)
        {
            int c = TopKSelector.ScanRange(MemoryMarshal.Cast<float, uint>(v.AsSpan(s, 1000)), lo, hi, out long a, buffer);
            above += a;
            inside.AddRange(buffer.AsSpan(0, c).ToArray());
        }
        // The scan agrees with a plain count.
        Assert.Equal(v.LongCount(x => TopKSelector.MagnitudeBits(x) >> 16 > (uint)hi), above);
        Assert.Equal(v.Count(x => TopKSelector.MagnitudeBits(x) >> 16 is var b && b >= (uint)lo && b <= (uint)hi), inside.Count);
        var sampled = TopKSelector.FromCandidates(k, v.Length, above, inside.ToArray());
        Assert.NotNull(sampled);
        Assert.Equal(exact.Threshold, sampled!.Threshold);
        Assert.Equal(exact.EqualQuota, sampled.EqualQuota);
        exact.Reset(); sampled.Reset();
        Assert.All(v, x => Assert.Equal(exact.Keep(x), sampled.Keep(x)));
    }

    [Fact]
    public void ARangeThatMissesTheThresholdIsRefused()
    {
        var v = Values(10_000, 4, false);
        var bits = MemoryMarshal.Cast<float, uint>(v.AsSpan());
        var buffer = new uint[v.Length];
        // Everything above: the k-th largest cannot be inside an empty top range.
        int c = TopKSelector.ScanRange(bits, 0, 0, out long above, buffer);
        Assert.Null(TopKSelector.FromCandidates(100, v.Length, above, buffer.AsSpan(0, c).ToArray()));
        // Nothing above, too few inside.
        c = TopKSelector.ScanRange(bits, TopKSelector.HighBuckets - 1, TopKSelector.HighBuckets - 1, out above, buffer);
        Assert.Equal(0, above);
        Assert.Null(TopKSelector.FromCandidates(100, v.Length, above, buffer.AsSpan(0, c).ToArray()));
    }
}
