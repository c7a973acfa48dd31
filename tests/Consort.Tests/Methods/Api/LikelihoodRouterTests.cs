using Consort.Methods.Api;
using Consort.Tests.Fakes;
using Microsoft.Extensions.AI;

namespace Consort.Tests.Methods.Api;

public class LikelihoodRouterTests
{
    private static ConsortModel Expert(string name, string topic) =>
        new(new ModelDescriptor { Name = name, Access = ModelAccess.Text | ModelAccess.FullLogits }, new FakeChat((_, _, _) => ($"{name} answers", null)),
            new FixedScoreTokenModel(name, text => text.Contains(topic) ? -0.5f : -3f));

    [Fact]
    public async Task RoutesEachQueryToTheModelThatFindsItMostLikely()
    {
        var router = await new LikelihoodRouterMethod().CreateAsync(new()
        {
            Name = "r", Models = [Expert("math", "+"), Expert("facts", "live")], Hyperparameters = new("likelihood_router", null),
        });
        var m = await router.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "Q: 7+48= A:")]);
        var f = await router.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "Q: Where does Bexor live? A:")]);
        Assert.Equal("math answers", m.Text);
        Assert.Equal("facts answers", f.Text);
        Assert.Equal(3, m.GetTrace().Count); // two scores and one answer
    }

    [Fact]
    public async Task CalibrationRemovesAModelsGeneralBias()
    {
        // "loud" finds everything likely; after subtracting its dev mean it only wins where it is relatively better.
        var loud = new ConsortModel(new ModelDescriptor { Name = "loud", Access = ModelAccess.Text | ModelAccess.FullLogits }, new FakeChat((_, _, _) => ("loud", null)),
            new FixedScoreTokenModel("loud", t => t.Contains("+") ? -0.4f : -0.45f));
        var quiet = new ConsortModel(new ModelDescriptor { Name = "quiet", Access = ModelAccess.Text | ModelAccess.FullLogits }, new FakeChat((_, _, _) => ("quiet", null)),
            new FixedScoreTokenModel("quiet", t => t.Contains("live") ? -1f : -3f));
        var dev = new FakeDev(["1+2", "Where does X live", "3+4", "Where does Y live"]);
        var router = await new LikelihoodRouterMethod().CreateAsync(new() { Name = "r", Models = [loud, quiet], Dev = dev, Hyperparameters = new("likelihood_router", null) });
        Assert.Equal("quiet", (await router.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "Where does Z live")])).Text);
        Assert.Equal("loud", (await router.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "5+6")])).Text);
    }
}
