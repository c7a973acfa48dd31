using Consort.Methods.Text;
using Consort.Testing;
using Consort.LlamaCpp;
using Microsoft.Extensions.AI;

namespace Consort.Tests.Methods.Text;

public class MajorityVoteTests
{
    [Fact]
    public async Task MostCommonNormalizedAnswerWinsAndEveryCallIsTraced()
    {
        var a = ScriptedChatClient.Model("a", _ => "The answer is 4.");
        var b = ScriptedChatClient.Model("b", c => c.Number == 1 ? "5" : "the answer is 4");
        var c = ScriptedChatClient.Model("c", _ => "7");
        var vote = await MethodHarness.CreateAsync(new MajorityVoteMethod(), [a, b, c], """{"samples": 2}""", concurrency: 1);
        // Normalize to the last number so "The answer is 4." and "4" count together.
        var options = new AnswerExtractor(s => System.Text.RegularExpressions.Regex.Matches(s, @"\d+").LastOrDefault()?.Value ?? s).AttachTo(null);
        var r = await vote.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "2+2?")], options);
        Assert.Contains("4", r.Text);
        var trace = r.GetTrace();
        Assert.Equal(6, trace.Count);
        Assert.Equal(3, r.AdditionalProperties![ConsortKeys.Votes]);
        Assert.Equal(trace.Sum(t => t.InputTokens), r.Usage!.InputTokenCount);
        Assert.All(trace, t => Assert.NotNull(t.Data!["answer"]));
    }

    [Fact]
    public async Task UsesTheContextsAnswerExtractorWhenTheRequestCarriesNone()
    {
        var a = ScriptedChatClient.Model("a", _ => "B) Paris");
        var b = ScriptedChatClient.Model("b", _ => "b");
        var c = ScriptedChatClient.Model("c", _ => "C");
        var letters = new AnswerExtractor(s => s.Trim()[..1].ToUpperInvariant());
        var vote = await MethodHarness.CreateAsync(new MajorityVoteMethod(), [a, b, c], """{"samples": 1}""", answers: letters);
        var r = await vote.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "capital?")]);
        Assert.Equal(2, r.AdditionalProperties![ConsortKeys.Votes]);
        Assert.Equal("B) Paris", r.Text);
    }

    [Fact]
    public async Task SamplesWithTheMethodTemperatureAndDistinctSeeds()
    {
        var model = ScriptedChatClient.Model("m", _ => "x");
        var vote = await MethodHarness.CreateAsync(new MajorityVoteMethod(), [model], """{"samples": 3, "temperature": 0.9}""", seed: 10);
        await vote.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "q")], new ChatOptions { Temperature = 0 });
        var calls = ScriptedChatClient.Of(model).Calls;
        Assert.All(calls, c => Assert.Equal(0.9f, c.Options!.Temperature));
        Assert.Equal(new long?[] { 10, 11, 12 }, calls.Select(c => c.Options!.Seed).Order().ToArray());
    }

    [Fact]
    public void AbsurdSampleCountsAreRefusedBeforeWork()
    {
        var e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new MajorityVoteMethod(), [ScriptedChatClient.Model("m", _ => "x").Descriptor], """{"samples": 1000000000}""", name: "vote"));
        Assert.Contains("'samples'", e.Message);
        Assert.Contains("[1, 1024]", e.Message);
    }

    [Fact]
    public async Task VotesOverRealSampledAnswers()
    {
        using var model = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K });
        var vote = await MethodHarness.CreateAsync(new MajorityVoteMethod(), [model], """{"samples": 3, "max_tokens": 6}""");
        var r = await vote.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "Once upon a time")]);
        var trace = r.GetTrace();
        Assert.Equal(3, trace.Count);
        Assert.Contains(trace, t => t.Output == r.Text);
        Assert.All(trace, t => Assert.True(t.OutputTokens > 0));
    }
}
