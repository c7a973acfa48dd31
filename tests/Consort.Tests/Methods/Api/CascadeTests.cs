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
    public async Task TwoStagesTraceTheirLeadSoTheRouterEvaluationCanSweepTheThreshold()
    {
        var two = await MethodHarness.CreateAsync(new CascadeMethod(), [Cheap(), Strong()], """{"thresholds": [0.5]}""");
        var data = (await two.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "hard one")])).GetTrace()[0].Data!;
        double confidence = (double)data["confidence"]!;
        Assert.Equal("strong", data["strong"]);
        Assert.Equal(-confidence, (double)data["strong_advantage"]!);
        Assert.Equal(["cheap", "strong"], ((Dictionary<string, object?>)data["scores"]!).Keys);
        // Three stages are not one threshold: no router data.
        var three = await MethodHarness.CreateAsync(new CascadeMethod(), [Cheap(), Cheap(), Strong()], """{"thresholds": [0.5, 0.5]}""");
        Assert.False((await three.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "hard one")])).GetTrace()[0].Data!.ContainsKey("strong"));
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

    // A text-only model (no logprobs) that answers, and when asked about its answer says yes on "easy", no on "hard", babble else.
    private static ConsortModel Asker(string name) => ScriptedChatClient.Model(name, c =>
        c.Prompt.Contains("confident") ? (c.Messages[0].Text.StartsWith("easy") ? "Yes." : c.Messages[0].Text.StartsWith("hard") ? "I am not confident." : "blorp")
                                        : $"{name} answer");

    [Fact]
    public async Task JustAskKeepsAnAnswerOnlyWhenTheStageSaysItIsConfident()
    {
        var (a, b, c) = (Asker("a"), Asker("b"), ScriptedChatClient.Model("c", _ => "c answer"));
        var cascade = await MethodHarness.CreateAsync(new CascadeMethod(), [a, b, c], """{"mode": "just_ask"}""");
        var easy = await cascade.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "easy one")]);
        Assert.Equal("a answer", easy.Text);
        Assert.Equal(["stage 1", "stage 1 / ask"], easy.GetTrace().Select(t => t.Role));
        Assert.Equal(true, easy.GetTrace()[1].Data!["confident"]);
        // The question follows the stage's own answer in the conversation; the answer call asked for no logprobs.
        var asked = ScriptedChatClient.Of(a).Calls[1];
        Assert.Equal(["easy one", "a answer", "Are you confident that your answer is correct? Reply with yes or no."], asked.Messages.Select(m => m.Text));
        Assert.Equal([ChatRole.User, ChatRole.Assistant, ChatRole.User], asked.Messages.Select(m => m.Role));
        Assert.False(ScriptedChatClient.Of(a).Calls[0].Options!.WantsLogprobs());

        // "not confident" defers at each stage; the last stage answers without being asked.
        var hard = await cascade.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "hard one")]);
        Assert.Equal("c answer", hard.Text);
        Assert.Equal(["a", "a", "b", "b", "c"], hard.GetTrace().Select(t => t.Model));
        Assert.Equal(false, hard.GetTrace()[1].Data!["confident"]);
        Assert.Equal("c", hard.GetAnsweredBy());

        // An unreadable reply defers too, and the trace says so.
        var odd = await cascade.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "odd one")]);
        Assert.Equal("c answer", odd.Text);
        Assert.Equal(true, odd.GetTrace()[1].Data!["unreadable"]);
        Assert.Equal(2, ScriptedChatClient.Of(c).CallCount); // c answered hard and odd, and was never asked
    }

    [Fact]
    public void JustAskNeedsNeitherDevNorTokenProbabilities()
    {
        var (options, _) = MethodHarness.Plan(new CascadeMethod(), [Asker("a").Descriptor, Asker("b").Descriptor], """{"mode": "just_ask"}""", hasDev: false);
        Assert.Equal(CascadeMode.JustAsk, ((CascadeOptions)options).Mode);
        var e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new CascadeMethod(), [Asker("a").Descriptor, Asker("b").Descriptor], """{"thresholds": [0.5]}"""));
        Assert.Contains("token", e.Message); // logit mode still needs token probabilities from the first stage
    }

    [Fact]
    public async Task MoCosPercentageIsTheShareOfDevQueriesDeferred()
    {
        // As MoCo: the threshold is the 'percentage' quantile of the stage's dev confidences; the same as deferral_rate.
        var dev = TestFitData.FromPrompts(["easy a", "easy b", "easy c", "hard d"]);
        var cascade = await MethodHarness.CreateAsync(new CascadeMethod(), [Cheap(), Strong()], """{"mode": "logit", "percentage": 0.25, "confidence": "average"}""", dev);
        Assert.Equal("cheap answer", (await cascade.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "easy x")])).Text);
        var hard = await cascade.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "hard x")]);
        Assert.Equal("strong answer", hard.Text);
        // average = arithmetic mean of the token probabilities: (e^-3 + e^-2) / 2.
        Assert.Equal((Math.Exp(-3) + Math.Exp(-2)) / 2, (double)hard.GetTrace()[0].Data!["confidence"]!, 5);
    }

    [Theory]
    [InlineData("""{"mode": "guess"}""", "mode", "logit, just_ask")]
    [InlineData("""{"percentage": 1.5}""", "percentage", "[0, 1]")]
    [InlineData("""{"mode": "just_ask", "thresholds": [0.5]}""", "thresholds", "mode 'logit' only")]
    [InlineData("""{"mode": "just_ask", "prompts": {"asq": "x"}}""", "asq", "ask")]
    public void BadCascadeModesAreNamedBeforeWork(string json, string key, string valid)
    {
        var e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new CascadeMethod(), [Cheap().Descriptor, Strong().Descriptor], json, hasDev: true, name: "casc"));
        Assert.Contains("run 'casc' (method cascade)", e.Message);
        Assert.Contains(key, e.Message);
        Assert.Contains(valid, e.Message);
    }

    [Fact]
    public async Task RealModelsAreAskedAboutTheirOwnAnswersInJustAskMode()
    {
        using var small = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, Name = "stories260k" });
        using var other = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Llama2Xs, Name = "llama2xs" });
        var cascade = await MethodHarness.CreateAsync(new CascadeMethod(), [small, other], """{"mode": "just_ask", "max_tokens": 8}""");
        var r = await cascade.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "Once upon a time")]);
        var trace = r.GetTrace();
        Assert.Equal(["stage 1", "stage 1 / ask"], trace.Take(2).Select(t => t.Role));
        Assert.All(trace.Take(2), t => Assert.Equal("stories260k", t.Model));
        var ask = trace[1].Data!;
        // The story model's reply is parsed (yes, no or unreadable); only a yes keeps its answer.
        bool kept = Equals(ask["confident"], true);
        Assert.Equal(kept ? 2 : 3, trace.Count);
        Assert.Equal(kept ? "stories260k" : "llama2xs", r.GetAnsweredBy());
        Assert.False(string.IsNullOrWhiteSpace(r.Text));
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
