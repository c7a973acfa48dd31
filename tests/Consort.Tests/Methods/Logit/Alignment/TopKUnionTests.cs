using Consort.Methods.Logit;
using Consort.Methods.Logit.Alignment;
using Xunit;

namespace Consort.Tests.Methods.Logit.Alignment;

public sealed class TopKUnionTests
{
    private static TokenDistribution Full(params double[] p) => TokenDistribution.FromLogits(p.Select(x => (float)Math.Log(x)).ToArray());

    [Fact]
    public void Full_members_combine_exactly_and_are_not_marked_approximate()
    {
        var a = Full(0.5, 0.3, 0.1, 0.1);
        var b = Full(0.1, 0.2, 0.3, 0.4);
        var (lp, approx) = TopKUnion.Combine([a, b], [0.5, 0.5], FusionCombine.Prob);
        Assert.False(approx);
        double[] expected = [0.3, 0.25, 0.2, 0.25];
        for (int v = 0; v < 4; v++) Assert.Equal(expected[v], Math.Exp(lp[v]), 5);
    }

    [Fact]
    public void Top_k_members_are_renormalized_over_the_union_and_the_rest_is_ruled_out()
    {
        // Member b lists tokens 3 and 1 (k = 2, 0.9 of its mass); the local member contributes its own top-2 (0 and 1).
        var a = Full(0.5, 0.3, 0.1, 0.05, 0.05);
        var b = TokenDistribution.FromTopK(5, [3, 1], [(float)Math.Log(0.6), (float)Math.Log(0.3)]);
        var (lp, approx) = TopKUnion.Combine([a, b], [0.5, 0.5], FusionCombine.Prob);
        Assert.True(approx);
        Assert.True(float.IsNegativeInfinity(lp[2]) && float.IsNegativeInfinity(lp[4]));
        // Union {0, 1, 3}. a over U: 0.5, 0.3, 0.05 (sum 0.85). b: token 0 unlisted gets min(0.6, 0.3, 0.1 / 3) = 1/30.
        double a0 = 0.5 / 0.85, a1 = 0.3 / 0.85, a3 = 0.05 / 0.85;
        double z = 1.0 / 30 + 0.3 + 0.6;
        double b0 = 1.0 / 30 / z, b1 = 0.3 / z, b3 = 0.6 / z;
        Assert.Equal(0.5 * (a0 + b0), Math.Exp(lp[0]), 5);
        Assert.Equal(0.5 * (a1 + b1), Math.Exp(lp[1]), 5);
        Assert.Equal(0.5 * (a3 + b3), Math.Exp(lp[3]), 5);
        Assert.Equal(1.0, lp.Where(float.IsFinite).Sum(x => Math.Exp(x)), 5);
    }

    [Fact]
    public void When_k_covers_the_mass_the_greedy_choice_is_the_exact_one()
    {
        var rng = new Random(3);
        for (int trial = 0; trial < 200; trial++)
        {
            var p = Enumerable.Range(0, 50).Select(_ => Math.Pow(rng.NextDouble(), 8)).ToArray();
            double s = p.Sum();
            var a = Full(p.Select(x => x / s).ToArray());
            // The same model "served" with its top 20: nearly all of its mass.
            var lpA = a.LogProbabilities();
            var top = Enumerable.Range(0, 50).OrderByDescending(v => lpA[v]).Take(20).ToArray();
            var b = TokenDistribution.FromTopK(50, top, top.Select(v => lpA[v]).ToArray());
            var (lp, _) = TopKUnion.Combine([a, b], [0.5, 0.5], FusionCombine.Prob);
            Assert.Equal(a.ArgMax(), TokenMath.ArgMax(lp));
        }
    }
}
