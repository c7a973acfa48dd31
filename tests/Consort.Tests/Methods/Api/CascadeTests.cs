using Consort.LlamaCpp;
using Consort.Methods.Api;
using Consort.Testing;
using Microsoft.Extensions.AI;

namespace Consort.Tests.Methods.Api;

public class CascadeTests
{
    // The cheap model is confident on "easy" prompts only.
    private static ConsortModel Cheap() => ScriptedChatClient.WithLogprobs("cheap", c => new("cheap answer", c.Prompt.StartsWith("easy") ? [-0.01f, -0.02f] : [-3f, -2f]), pricePerMillion: 1m);
    private static ConsortModel Strong() => ScriptedChatClient.Model("strong", _ => "strong answer");

    [Fact]
    public async Task DefersOnlyWhenConfidenceIsUnderTheThreshold()
    {
        var cascade = await MethodHarness.CreateAsync(new CascadeMethod(), [Cheap(), Strong()], """{"thresholds": [0.5]}""");
        var easy = await cascade.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "easy one")]);
        var hard = await cascade.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "hard one")]);
        Assert.Equal("cheap answer", easy.Text);
        Assert.Single(easy.GetTrace());
        Assert.Equal("strong answer", hard.Text);
        Assert.Equal(["cheap", "strong"], hard.GetTrace().Select(t => t.Model));
        Assert.Equal(true, hard.GetTrace()[0].Data!["deferred"]);
        Assert.Equal("strong", hard.GetAnsweredBy());
        Assert.NotNull(easy.GetCost()); // the cheap model has a price
    }

    [Fact]
    public async Task CalibratesThresholdsOnDevToTheTargetDeferralRate()
    {
        // 3 of 4 dev prompts are easy: a 25% deferral target puts the threshold between hard and easy confidences.
        var dev = TestFitData.FromPrompts(["easy a", "easy b", "easy c", "hard d"]);
        var cascade = await MethodHarness.CreateAsync(new CascadeMethod(), [Cheap(), Strong()], """{"deferral_rate": 0.25}""", dev);
        Assert.Equal("cheap answer", (await cascade.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "easy x")])).Text);
        Assert.Equal("strong answer", (await cascade.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "hard x")])).Text);
    }

    [Fact]
    public async Task CalibratesOnOutputsMadeWithTheTasksGenerationOptions()
    {
        // The task evaluates 16-token answers that stop at a newline: calibration must generate the same way.
        var cheap = Cheap();
        var taskOptions = new ChatOptions { MaxOutputTokens = 16, StopSequences = ["\n"], Temperature = 0 };
        var dev = TestFitData.FromPairs([("easy a", "x"), ("hard b", "y")], taskOptions);
        await MethodHarness.CreateAsync(new CascadeMethod(), [cheap, Strong()], """{"deferral_rate": 0.5}""", dev);
        var calls = ScriptedChatClient.Of(cheap).Calls;
        Assert.Equal(2, calls.Count);
        Assert.All(calls, c =>
        {
            Assert.Equal(16, c.Options!.MaxOutputTokens);
            Assert.Equal(["\n"], c.Options.StopSequences!);
            Assert.True(c.Options.WantsLogprobs());
        });
    }

    [Fact]
    public void QuantileSplitsValuesAtTheRequestedShare()
    {
        double[] v = [0.1, 0.2, 0.3, 0.4];
        Assert.Equal(0.25, CascadeMethod.Quantile(v, 0.5), 9);
        Assert.True(CascadeMethod.Quantile(v, 0) < 0.1);
        Assert.True(CascadeMethod.Quantile(v, 1) > 0.4);
    }

    [Fact]
    public async Task NeedsThresholdsOrDevBeforeAnyWork()
    {
        var cheap = Cheap();
        var e = await Assert.ThrowsAsync<ConfigException>(() => MethodHarness.CreateAsync(new CascadeMethod(), [cheap, Strong()]));
        Assert.Contains("thresholds", e.Message);
        Assert.Equal(0, ScriptedChatClient.Of(cheap).CallCount);
    }

    [Theory]
    [InlineData("""{"deferral_rate": 1.5}""", "deferral_rate", "[0, 1]")]
    [InlineData("""{"thresholds": [0.1, 0.2]}""", "thresholds", "needs 1 value")]
    [InlineData("""{"confidence": "median", "thresholds": [0.5]}""", "confidence", "mean, min, first, sum")]
    [InlineData("""{"deferal_rate": 0.5}""", "deferal_rate", "did you mean 'deferral_rate'")]
    public void BadValuesAreNamedWithTheValidOnes(string json, string key, string valid)
    {
        var e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new CascadeMethod(), [Cheap().Descriptor, Strong().Descriptor], json, hasDev: true, name: "casc"));
        Assert.Contains("run 'casc' (method cascade)", e.Message);
        Assert.Contains($"'{key}'", e.Message);
        Assert.Contains(valid, e.Message);
    }

    [Fact]
    public async Task RealModelsGiveConfidenceFromTheirTokenProbabilities()
    {
        using var small = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, Name = "stories260k" });
        using var other = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Llama2Xs, Name = "llama2xs" });
        var dev = TestFitData.FromPrompts(["Once upon a time", "The cat sat on the", "Lily and Ben went to the", "One day, a big"]);
        var cascade = await MethodHarness.CreateAsync(new CascadeMethod(), [small, other], """{"deferral_rate": 0.5, "max_tokens": 8}""", dev);
        var r = await cascade.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "Once upon a time")]);
        var first = r.GetTrace()[0];
        Assert.Equal("stories260k", first.Model);
        Assert.InRange((double)first.Data!["confidence"]!, 0.0001, 1.0);
        Assert.False(string.IsNullOrWhiteSpace(r.Text));
    }
}
