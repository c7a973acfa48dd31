using Consort.Methods.Api;

namespace Consort.Tests.Methods.Api;

public class DeferralScheduleTests
{
    [Fact]
    public void WarmupsFallFromOneToTheTargetAsMoCosDo()
    {
        Assert.Equal(0.5, DeferralSchedule.At("none", 0.5, 15, 0));
        // torch.linspace(1, 0.5, 5) = 1, .875, .75, .625, .5
        Assert.Equal([1, 0.875, 0.75, 0.625, 0.5, 0.5], Enumerable.Range(0, 6).Select(i => DeferralSchedule.At("linear", 0.5, 5, i)));
        Assert.Equal(1.0, DeferralSchedule.At("cosine", 0.5, 4, 0), 12);
        Assert.Equal(0.75, DeferralSchedule.At("cosine", 0.5, 4, 2), 12); // .5 + .5 * .5 * (1 + cos(pi/2))
        Assert.Equal(0.5, DeferralSchedule.At("cosine", 0.5, 4, 4), 12);
        Assert.Contains("none, linear, cosine", Assert.Throws<ArgumentException>(() => DeferralSchedule.At("step", 0.5, 4, 1)).Message);
    }
}
