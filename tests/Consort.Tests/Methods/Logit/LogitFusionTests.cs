using Consort.Methods;
using Consort.LlamaCpp;
using Consort.Methods.Logit;
using Consort.Testing;
using Consort.Tests.LlamaCpp;
using Microsoft.Extensions.AI;
using Xunit;

namespace Consort.Tests.Methods.Logit;

public sealed class LogitFusionTests(LlamaFixture fx, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<LlamaFixture>
{
    // Held-out TinyStories-style text, written for this test (prefix, continuation).
    private static readonly (string Prefix, string Tail)[] HeldOut =
    [
        ("Once upon a time, there was a little boy named Tim.", " Tim had a red ball. He liked to play with it in the park every day."),
        ("One day, Lily went to the park with her mom.", " She saw a big dog. The dog was happy and wanted to play with Lily."),
        ("Sue had a small cat.", " The cat was very soft. Sue gave the cat some milk and they were both happy."),
    ];

    // Dev text for fitting weights (different sentences).
    private static readonly (string Prefix, string Tail)[] Dev =
    [
        ("Once upon a time, there was a girl named Amy.", " Amy loved to draw pictures of flowers."),
        ("Tom and his friend Ben went to the beach.", " They built a big sand castle and laughed."),
        ("The little bird was sad.", " It could not find its mom. Then a kind girl helped the bird."),
        ("Mia wanted to bake a cake.", " She asked her mom for help, and they made a yummy cake together."),
        ("There was a big tree in the garden.", " The children liked to sit under the tree and read books."),
    ];

    private static async Task<double> MeanLoss(ITokenModel m, (string Prefix, string Tail)[] texts)
    {
        double sum = 0; int n = 0;
        foreach (var (prefix, rest) in texts)
        {
            var s = await m.ScoreAsync(m.Tokenizer.Encode(prefix, addBos: true), m.Tokenizer.Encode(rest));
            sum -= s.Sum(); n += s.Length;
        }
        return sum / n;
    }

    private sealed class FitData((string Prefix, string Tail)[] items) : IFitData
    {
        public IReadOnlyList<FitExample> Examples { get; } = items.Select((x, i) => new FitExample($"dev{i}",
            [new ChatMessage(ChatRole.User, x.Prefix)], x.Tail.TrimStart(), o => o == x.Tail ? 1 : 0, o => o)).ToList();
    }

    [Fact]
    public async Task Fusion_LowersLossBelowTheWorseModel_AndFittedWeightsReachTheBetter()
    {
        double a = await MeanLoss(fx.Stories.Tokens!, HeldOut), b = await MeanLoss(fx.Xs.Tokens!, HeldOut);
        using var uniform = await MethodHarness.CreateAsync(new LogitFusionMethod(), [fx.Stories, fx.Xs], "{}");
        double u = await MeanLoss(uniform.Tokens!, HeldOut);
        Assert.True(u < Math.Max(a, b), $"uniform fusion loss {u:0.000} not below the worse model ({a:0.000}, {b:0.000})");

        var logs = new List<string>();
        using var fitted = await MethodHarness.CreateAsync(new LogitFusionMethod(), [fx.Stories, fx.Xs], """{"fit_weights": true}""", new FitData(Dev), name: "fused", log: logs.Add);
        double f = await MeanLoss(fitted.Tokens!, HeldOut);
        var w = ((FusedTokenModel)fitted.Tokens!).Weights;
        output.WriteLine($"held-out mean NLL/token: stories260k {a:0.000}, llama2xs {b:0.000}, uniform mixture {u:0.000}, fitted mixture {f:0.000} (weights {w[0]:0.000}/{w[1]:0.000})");
        Assert.True(f <= Math.Min(a, b) + 0.02, $"fitted fusion loss {f:0.000} (weights {w[0]:0.00}/{w[1]:0.00}) above the better model ({a:0.000}, {b:0.000})");
        Assert.True(w[0] > w[1], "the better model (stories260k) should get the larger weight");
        Assert.Contains(logs, l => l.Contains("fitted weights"));
    }

    [Fact]
    public async Task ProductOfExperts_FitsOnAGrid_AndScoresLikeStepwiseDecoding()
    {
        using var poe = await MethodHarness.CreateAsync(new LogitFusionMethod(), [fx.Stories, fx.Xs], """{"combine": "logprob", "weights": [0.7, 0.3]}""");
        var tok = poe.Tokens!;
        var prompt = tok.Tokenizer.Encode("Once upon a time", addBos: true);
        var cont = tok.Tokenizer.Encode("there was a little girl named Lily.");
        var scores = await tok.ScoreAsync(prompt, cont);
        using var s1 = await fx.Stories.Tokens!.StartAsync(prompt);
        using var s2 = await fx.Xs.Tokens!.StartAsync(prompt);
        for (int t = 0; t < cont.Length; t++)
        {
            var l1 = s1.Next.LogProbabilities(); var l2 = s2.Next.LogProbabilities();
            var logits = new float[l1.Length];
            for (int v = 0; v < logits.Length; v++) logits[v] = 0.7f * l1[v] + 0.3f * l2[v];
            var norm = new float[logits.Length];
            TokenMath.LogSoftmax(logits, norm);
            Assert.InRange(Math.Abs(norm[cont[t]] - scores[t]), 0, 1e-3);
            await s1.AppendAsync([cont[t]]); await s2.AppendAsync([cont[t]]);
        }
        var data = Dev.Select(d => (tok.Tokenizer.Encode(d.Prefix, true), tok.Tokenizer.Encode(d.Tail))).ToList();
        var w = await LogitFusionMethod.FitWeightsAsync([fx.Stories.Tokens!, fx.Xs.Tokens!], data, FusionCombine.LogProb);
        Assert.Equal(2, w.Length);
        Assert.InRange(w.Sum(), 0.999, 1.001);
        Assert.True(w[0] >= 0.5, $"grid fit gave [{w[0]}, {w[1]}]");
    }

    [Fact]
    public async Task MixtureDistribution_IsTheWeightedAverage_AndScoreMatchesSteps()
    {
        using var mix = await MethodHarness.CreateAsync(new LogitFusionMethod(), [fx.Stories, fx.Xs], """{"weights": [3, 1]}""");
        var tok = mix.Tokens!;
        var prompt = tok.Tokenizer.Encode("The cat sat on the", addBos: true);
        using var f = await tok.StartAsync(prompt);
        using var s1 = await fx.Stories.Tokens!.StartAsync(prompt);
        using var s2 = await fx.Xs.Tokens!.StartAsync(prompt);
        var fp = f.Next.LogProbabilities(); var p1 = s1.Next.LogProbabilities(); var p2 = s2.Next.LogProbabilities();
        for (int v = 0; v < fp.Length; v++)
            Assert.InRange(Math.Abs(Math.Exp(fp[v]) - (0.75 * Math.Exp(p1[v]) + 0.25 * Math.Exp(p2[v]))), 0, 1e-5);
        Assert.InRange(fp.Sum(x => Math.Exp(x)), 0.999, 1.001);

        var cont = tok.Tokenizer.Encode("mat and looked at the sun.");
        var scores = await tok.ScoreAsync(prompt, cont);
        for (int t = 0; t < cont.Length; t++)
        {
            Assert.InRange(Math.Abs(f.Next.LogProbabilities()[cont[t]] - scores[t]), 0, 1e-2);
            await f.AppendAsync([cont[t]]);
        }
        // Fork and rewind go through every member.
        using var g = await f.ForkAsync();
        await f.RewindAsync(prompt.Length);
        Assert.Equal(prompt.Length, f.Tokens.Count);
        Assert.Equal(prompt.Length + cont.Length, g.Tokens.Count);
        LlamaTokenModelTests.AssertClose(fp, f.Next.LogProbabilities(), 1e-4f);
    }

    [Fact]
    public async Task FusedChat_DecodesGreedily_WithTraceAndLogprobs_AndFusionsNest()
    {
        using var fused = await MethodHarness.CreateAsync(new LogitFusionMethod(), [fx.Stories, fx.Xs], """{"max_tokens": 20}""");
        var r = await fused.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "Once upon a time")]);
        Assert.StartsWith(", there was a little girl named Lily", r.Text);
        var trace = r.GetTrace();
        Assert.Equal(3, trace.Count);
        Assert.Equal("stories260k", trace[0].Model);
        Assert.Equal("llama2xs", trace[1].Model);
        Assert.All(trace.Take(2), e => { Assert.True(e.InputTokens > 0); Assert.True(e.OutputTokens >= 19); Assert.True(e.LatencyMs > 0); });
        Assert.Equal("combined", trace[2].Role);
        Assert.Equal(r.Text, trace[2].Output);
        Assert.Equal(20, r.GetTokenLogprobs()!.Length);
        Assert.Equal(ModelAccess.Text | ModelAccess.FullLogits, fused.Descriptor.Access);

        // Streaming equals non-streaming for the fusion too.
        var pieces = new List<string>();
        await foreach (var u in fused.Chat.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "Once upon a time")])) pieces.Add(u.Text);
        Assert.Equal(r.Text, string.Concat(pieces));

        // A fusion of a fusion and a model is itself a valid token model.
        using var nested = await MethodHarness.CreateAsync(new LogitFusionMethod(), [fused, fx.Stories], """{"max_tokens": 8}""");
        var n = await nested.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "Once upon a time")]);
        Assert.StartsWith(", there was", n.Text);
    }

    [Fact]
    public async Task ManyConcurrentFusedChats_ShareMemberSlotsWithoutDeadlock()
    {
        // Members have 4 sequence slots each; 10 concurrent fused chats must queue, not deadlock.
        using var fused = await MethodHarness.CreateAsync(new LogitFusionMethod(), [fx.Stories, fx.Xs], """{"max_tokens": 12, "temperature": 0.7}""");
        var tasks = Enumerable.Range(0, 10).Select(i => fused.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "Once upon a time")],
            new ChatOptions { Seed = i }));
        var all = await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(90));
        Assert.All(all, r => Assert.Equal(12, r.GetTokenLogprobs()!.Length));
        var again = await fused.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "Once upon a time")], new ChatOptions { Seed = 3 });
        Assert.Equal(all[3].Text, again.Text);
    }

    [Fact]
    public async Task FusedSteps_TryBothSchedules_AndMatchTheMembers()
    {
        using var fusedModel = new FusedTokenModel("f", [fx.Stories.Tokens!, fx.Xs.Tokens!], [0.5, 0.5], FusionCombine.Prob);
        var prompt = fusedModel.Tokenizer.Encode("Once upon a time", addBos: true);
        using var f = await fusedModel.StartAsync(prompt);
        for (int i = 0; i < 40; i++) await f.AppendAsync([f.Next.ArgMax()]);
        var (par, seq) = fusedModel.StepModes;
        Assert.True(par > 0 && seq > 0, $"parallel {par}, sequential {seq}");
        // Whatever the schedule, the fused distribution is the mixture of the members' current ones.
        var s = (FusedSequence)f;
        var p1 = s.MemberSequences[0].Next.LogProbabilities(); var p2 = s.MemberSequences[1].Next.LogProbabilities();
        var fp = f.Next.LogProbabilities();
        for (int v = 0; v < fp.Length; v++)
            Assert.InRange(Math.Abs(Math.Exp(fp[v]) - 0.5 * (Math.Exp(p1[v]) + Math.Exp(p2[v]))), 0, 1e-5);
        Assert.Equal(prompt.Length + 40, s.MemberSequences[1].Tokens.Count);
    }

    [Fact]
    public async Task DifferentVocabulary_IsRefusedNamingBothModels()
    {
        using var other = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.TinyStories656K, Name = "tinystories-656k", ContextSize = 64, MaxSequences = 1 });
        var e = await Assert.ThrowsAsync<ConfigException>(() => MethodHarness.CreateAsync(new LogitFusionMethod(), [fx.Stories, other], "{}"));
        Assert.Contains("(method logit_fusion): combines next-token distributions, so every model must share one vocabulary", e.Message);
        Assert.Contains("'stories260k' has llama:512:", e.Message);
        Assert.Contains("'tinystories-656k' has", e.Message);
        Assert.Contains(":2048:", e.Message);
    }

    [Fact]
    public async Task BadHyperparameters_AreConfigErrors()
    {
        await Assert.ThrowsAsync<ConfigException>(() => MethodHarness.CreateAsync(new LogitFusionMethod(), [fx.Stories, fx.Xs], """{"weights": [1]}"""));
        await Assert.ThrowsAsync<ConfigException>(() => MethodHarness.CreateAsync(new LogitFusionMethod(), [fx.Stories, fx.Xs], """{"combine": "max"}"""));
        await Assert.ThrowsAsync<ConfigException>(() => MethodHarness.CreateAsync(new LogitFusionMethod(), [fx.Stories, fx.Xs], """{"weights": [1, -1]}"""));
        var e = await Assert.ThrowsAsync<ConfigException>(() => MethodHarness.CreateAsync(new LogitFusionMethod(), [fx.Stories, fx.Xs], """{"fit_weights": true}"""));
        Assert.Contains("dev", e.Message);
    }
}
