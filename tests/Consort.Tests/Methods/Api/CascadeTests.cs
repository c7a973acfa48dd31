using Consort.LlamaCpp;
using Consort.Methods.Api;
using Consort.Tests.Fakes;
using Consort.Testing;
using Microsoft.Extensions.AI;

namespace Consort.Tests.Methods.Api;

public class CascadeTests
{
    // The cheap model is confident on "easy" prompts only.
    private static ConsortModel Cheap() => FakeChat.WithLogprobs("cheap", p => ("cheap answer", p.StartsWith("easy") ? [-0.01f, -0.02f] : [-3f, -2f]), price: 1m);
    private static ConsortModel Strong() => FakeChat.Text("strong", (_, _, _) => "strong answer");

    [Fact]
    public async Task DefersOnlyWhenConfidenceIsUnderTheThreshold()
    {
        var cascade = await new CascadeMethod().CreateAsync(new()
        {
            Name = "c", Models = [Cheap(), Strong()], Hyperparameters = new("cascade", new() { ["thresholds"] = new System.Text.Json.Nodes.JsonArray(0.5) }),
        });
        var easy = await cascade.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "easy one")]);
        var hard = await cascade.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "hard one")]);
        Assert.Equal("cheap answer", easy.Text);
        Assert.Single(easy.GetTrace());
        Assert.Equal("strong answer", hard.Text);
        Assert.Equal(["cheap", "strong"], hard.GetTrace().Select(t => t.Model));
        Assert.Equal(true, hard.GetTrace()[0].Data!["deferred"]);
        Assert.NotNull(easy.GetCost()); // the cheap model has a price
    }

    [Fact]
    public async Task CalibratesThresholdsOnDevToTheTargetDeferralRate()
    {
        // 3 of 4 dev prompts are easy: a 25% deferral target puts the threshold between hard and easy confidences.
        var dev = new FakeDev(["easy a", "easy b", "easy c", "hard d"]);
        var cascade = await new CascadeMethod().CreateAsync(new()
        {
            Name = "c", Models = [Cheap(), Strong()], Dev = dev, Hyperparameters = new("cascade", new() { ["deferral_rate"] = 0.25 }),
        });
        Assert.Equal("cheap answer", (await cascade.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "easy x")])).Text);
        Assert.Equal("strong answer", (await cascade.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "hard x")])).Text);
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
    public async Task NeedsThresholdsOrDev()
    {
        var e = await Assert.ThrowsAsync<ConfigException>(() => new CascadeMethod().CreateAsync(new() { Name = "c", Models = [Cheap(), Strong()], Hyperparameters = new("cascade", null) }));
        Assert.Contains("thresholds", e.Message);
    }

    [Fact]
    public async Task RealModelsGiveConfidenceFromTheirTokenProbabilities()
    {
        using var small = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, Name = "stories260k" });
        using var other = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Llama2Xs, Name = "llama2xs" });
        var cascade = await new CascadeMethod().CreateAsync(new()
        {
            Name = "c", Models = [small, other], Dev = new FakeDev(["Once upon a time", "The cat sat on the", "Lily and Ben went to the", "One day, a big"]),
            Hyperparameters = new("cascade", new() { ["deferral_rate"] = 0.5, ["max_tokens"] = 8 }),
        });
        var r = await cascade.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "Once upon a time")]);
        var first = r.GetTrace()[0];
        Assert.Equal("stories260k", first.Model);
        Assert.InRange((double)first.Data!["confidence"]!, 0.0001, 1.0);
        Assert.False(string.IsNullOrWhiteSpace(r.Text));
    }
}
