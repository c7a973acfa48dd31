using Consort.Methods.Logit;
using Xunit;

namespace Consort.Tests.Methods.Logit;

public sealed class LogitArithmeticTests
{
    [Fact]
    public void Signed_sums_and_the_plausibility_mask_follow_their_definitions()
    {
        float[] expert = [MathF.Log(0.6f), MathF.Log(0.3f), MathF.Log(0.08f), MathF.Log(0.02f)];
        float[] amateur = [MathF.Log(0.7f), MathF.Log(0.1f), MathF.Log(0.1f), MathF.Log(0.1f)];
        var cd = LogitArithmetic.Combine([expert, amateur], [1.0, -0.5]);
        for (int v = 0; v < 4; v++) Assert.Equal(expert[v] - 0.5f * amateur[v], cd[v], 5);
        // alpha 0.1: tokens below 0.1 x 0.6 = 0.06 of the expert go; token 3 (0.02) is masked, token 2 (0.08) stays.
        LogitArithmetic.ApplyPlausibility(cd, expert, 0.1);
        Assert.True(float.IsNegativeInfinity(cd[3]));
        Assert.True(float.IsFinite(cd[2]));
        Assert.Equal(1, TokenMath.ArgMax(cd)); // log .3 - .5 log .1 beats log .6 - .5 log .7
    }

    [Fact]
    public void A_token_a_member_rules_out_stays_ruled_out_even_with_a_negative_coefficient()
    {
        float[] a = [0f, -1f];
        float[] b = [float.NegativeInfinity, -1f];
        var r = LogitArithmetic.Combine([a, b], [1.0, -1.0]);
        Assert.True(float.IsNegativeInfinity(r[0]));
        Assert.Equal(0f, r[1]);
    }
}
