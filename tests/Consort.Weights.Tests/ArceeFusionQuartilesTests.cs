using Consort.Weights.Methods;

namespace Consort.Weights.Tests;

/// <summary>arcee_fusion's radix-selected quartiles against the sorted array's elements.</summary>
public class ArceeFusionQuartilesTests
{
    [Theory]
    [InlineData("spread", 100_003)]
    [InlineData("signed-ties", 4097)]
    [InlineData("one", 1)]
    [InlineData("nan", 501)]
    public void QuartilesAreTheSortedArraysElements(string kind, int n)
    {
        var r = new Random(3);
        var values = Enumerable.Range(0, n).Select(j => kind switch
        {
            "spread" => (float)(Math.Exp(r.NextDouble() * 30 - 15) * (r.Next(10) == 0 ? -1 : 1)),
            "signed-ties" => r.Next(-4, 5) * 0.5f,
            "nan" => j % 50 == 0 ? float.NaN : (float)r.NextDouble(),
            _ => 2.5f,
        }).ToArray();
        var sorted = (float[])values.Clone();
        Array.Sort(sorted);
        var (q25, q50, q75) = ArceeFusionMerge.Quartiles(values);
        Assert.Equal(ArceeFusionMerge.Quantile(sorted, 0.25), q25);
        Assert.Equal(ArceeFusionMerge.Quantile(sorted, 0.5), q50);
        Assert.Equal(ArceeFusionMerge.Quantile(sorted, 0.75), q75);
    }
}
