using Consort.Methods;
using Consort.Methods.Text;
using Consort.Tests.Fakes;
using Consort.Testing;
using Consort.LlamaCpp;
using Microsoft.Extensions.AI;

namespace Consort.Tests.Methods.Text;

public class MajorityVoteTests
{
    private static MethodContext Context(params ConsortModel[] models) =>
        new() { Name = "vote", Models = models, Hyperparameters = new Hyperparameters("majority_vote", new() { ["samples"] = 2 }) };

    [Fact]
    public async Task MostCommonNormalizedAnswerWinsAndEveryCallIsTraced()
    {
        var a = FakeChat.Text("a", (_, _, _) => "The answer is 4.");
        var b = FakeChat.Text("b", (_, _, n) => n == 1 ? "5" : "the answer is 4");
        var c = FakeChat.Text("c", (_, _, _) => "7");
        var vote = await new MajorityVoteMethod().CreateAsync(Context(a, b, c));
        // Normalize to the last number so "The answer is 4." and "4" count together.
        var options = AnswerNormalizer.With(null, s => System.Text.RegularExpressions.Regex.Matches(s, @"\d+").LastOrDefault()?.Value ?? s);
        var r = await vote.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "2+2?")], options);
        Assert.Contains("4", r.Text);
        var trace = r.GetTrace();
        Assert.Equal(6, trace.Count);
        Assert.Equal(3, r.AdditionalProperties!["consort.votes"]);
        Assert.Equal(trace.Sum(t => t.InputTokens), r.Usage!.InputTokenCount);
        Assert.All(trace, t => Assert.NotNull(t.Data!["answer"]));
    }

    [Fact]
    public async Task SamplesWithTheMethodTemperatureAndDistinctSeeds()
    {
        var fake = new FakeChat((_, _, _) => ("x", null));
        var model = new ConsortModel(new ModelDescriptor { Name = "m", Access = ModelAccess.Text }, fake);
        var vote = await new MajorityVoteMethod().CreateAsync(new MethodContext
        {
            Name = "vote", Models = [model], Seed = 10,
            Hyperparameters = new Hyperparameters("majority_vote", new() { ["samples"] = 3, ["temperature"] = 0.9 }),
        });
        await vote.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "q")], new ChatOptions { Temperature = 0 });
        Assert.All(fake.Options, o => Assert.Equal(0.9f, o!.Temperature));
        Assert.Equal(new long?[] { 10, 11, 12 }, fake.Options.Select(o => o!.Seed).Order().ToArray());
    }

    [Fact]
    public async Task VotesOverRealSampledAnswers()
    {
        using var model = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K });
        var vote = await new MajorityVoteMethod().CreateAsync(new MethodContext
        {
            Name = "vote", Models = [model],
            Hyperparameters = new Hyperparameters("majority_vote", new() { ["samples"] = 3, ["max_tokens"] = 6 }),
        });
        var r = await vote.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "Once upon a time")]);
        var trace = r.GetTrace();
        Assert.Equal(3, trace.Count);
        Assert.Contains(trace, t => t.Output == r.Text);
        Assert.All(trace, t => Assert.True(t.OutputTokens > 0));
    }
}
