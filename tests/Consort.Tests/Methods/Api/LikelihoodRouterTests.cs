using Consort.Methods.Api;
using Consort.Testing;
using Microsoft.Extensions.AI;

namespace Consort.Tests.Methods.Api;

public class LikelihoodRouterTests
{
    private static readonly string[] Math = ["q: 7+48= a: 55", "q: 3+21= a: 24", "q: 9+10= a: 19", "q: 2+35= a: 37"];
    private static readonly string[] Facts = ["q: where does bexor live? a: tulmar", "q: where does kima live? a: rone", "q: where does olt live? a: vass"];

    // A table model that knows one topic, answering with its own name.
    private static ConsortModel Expert(string name, IEnumerable<string> corpus, double smoothing = 0.05)
    {
        var tokens = new TableTokenModel(name, corpus, smoothing: smoothing);
        return new ConsortModel(tokens.Descriptor, new ScriptedChatClient(_ => $"{name} answers"), tokens);
    }

    [Fact]
    public async Task RoutesEachQueryToTheModelThatFindsItMostLikely()
    {
        var router = await MethodHarness.CreateAsync(new LikelihoodRouterMethod(), [Expert("math", Math), Expert("facts", Facts)]);
        var m = await router.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "q: 4+12= a:")]);
        var f = await router.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "q: where does uma live? a:")]);
        Assert.Equal("math answers", m.Text);
        Assert.Equal("facts answers", f.Text);
        Assert.Equal(3, m.GetTrace().Count); // two scores and one answer
        Assert.Equal("facts", f.GetAnsweredBy());
    }

    [Fact]
    public async Task CalibrationRemovesAModelsGeneralBias()
    {
        // "loud" knows both topics sharply and finds every query likely; "quiet" knows only facts, with flat
        // distributions. Raw scores send everything to loud; after subtracting each model's dev mean, quiet wins
        // where it is relatively better.
        var loud = Expert("loud", [.. Math, .. Facts], smoothing: 0.001);
        var quiet = Expert("quiet", Facts, smoothing: 2);
        // Queries and dev prompts from the corpus itself, so no unseen character skews a score.
        var queries = new[] { "q: where does kima live? a:", "q: 9+10= a:" };
        var raw = await MethodHarness.CreateAsync(new LikelihoodRouterMethod(), [loud, quiet], """{"calibrate": false}""");
        Assert.All(queries, q => Assert.Equal("loud answers", raw.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, q)]).Result.Text));

        var dev = TestFitData.FromPrompts(["q: 7+48= a:", "q: where does bexor live? a:", "q: 3+21= a:", "q: where does olt live? a:"]);
        var router = await MethodHarness.CreateAsync(new LikelihoodRouterMethod(), [loud, quiet], dev: dev);
        Assert.Equal("quiet answers", (await router.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, queries[0])])).Text);
        Assert.Equal("loud answers", (await router.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, queries[1])])).Text);
    }
}
