using Consort.Methods.Logit;
using Consort.Testing;
using Consort.Tests.LlamaCpp;
using Microsoft.Extensions.AI;
using Xunit;

namespace Consort.Tests.Methods.Logit;

public sealed class ContrastiveDecodingTests(LlamaFixture fx, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<LlamaFixture>
{
    [Fact]
    public async Task Follows_expert_minus_beta_amateur_within_the_plausibility_mask_on_real_models()
    {
        const double alpha = 0.1, beta = 1.0;
        using var cd = await MethodHarness.CreateAsync(new ContrastiveDecodingMethod(), [fx.Stories, fx.Xs], $$"""{"alpha": {{alpha}}, "beta": {{beta}}, "max_tokens": 24}""");
        var prompt = LogitReference.Prompt(fx.Stories, "Once upon a time");
        int maskedWinners = 0;
        var (tokens, differs) = await LogitReference.AssertFollowsAsync(cd.Tokens!, [fx.Stories.Tokens!, fx.Xs.Tokens!], lps =>
        {
            var (e, a) = (lps[0], lps[1]);
            var s = new float[e.Length];
            float max = e.Max();
            int unmasked = 0;
            for (int v = 0; v < s.Length; v++)
            {
                s[v] = (float)(e[v] - beta * a[v]);
                if (s[v] > s[unmasked]) unmasked = v;
            }
            for (int v = 0; v < s.Length; v++)
                if (Math.Exp(e[v]) < alpha * Math.Exp(max)) s[v] = float.NegativeInfinity;
            // Without the mask the contrast alone would pick an implausible token here.
            if (float.IsNegativeInfinity(s[unmasked])) maskedWinners++;
            return s;
        }, prompt, 24);
        var text = fx.Stories.Tokens!.Tokenizer.Decode(tokens);
        output.WriteLine($"contrastive decoding (alpha {alpha}, beta {beta}): \"{text}\"; {differs} of {tokens.Count} tokens differ from the expert's greedy choice; the mask overruled the contrast at {maskedWinners} steps");
        Assert.True(maskedWinners > 0, "the plausibility mask never changed a choice: the test does not exercise it");
        Assert.True(differs > 0, "contrastive decoding chose exactly the expert's tokens: the amateur had no effect");

        // The chat decodes the same greedy text, and the trace names the parts.
        var r = await cd.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "Once upon a time")], new ChatOptions { Temperature = 0 });
        Assert.Equal(text, r.Text);
        var trace = r.GetTrace();
        Assert.Equal("expert", trace[0].Data!["part"]);
        Assert.Equal(-beta, (double)trace[1].Data!["coefficient"]!);
        Assert.Equal(alpha, (double)trace[0].Data!["plausibility_alpha"]!);
    }

    [Fact]
    public async Task Alpha_one_keeps_only_the_experts_best_token()
    {
        using var cd = await MethodHarness.CreateAsync(new ContrastiveDecodingMethod(), [fx.Stories, fx.Xs], """{"alpha": 1, "beta": 5}""");
        var prompt = LogitReference.Prompt(fx.Stories, "The dog");
        using var s = await cd.Tokens!.StartAsync(prompt);
        using var e = await fx.Stories.Tokens!.StartAsync(prompt);
        var lp = s.Next.LogProbabilities();
        Assert.Equal(1, lp.Count(float.IsFinite));
        Assert.Equal(e.Next.ArgMax(), s.Next.ArgMax());
    }

    [Fact]
    public void Bad_input_is_refused_before_work()
    {
        var stories = fx.Stories.Descriptor;
        var e1 = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new ContrastiveDecodingMethod(), [stories, fx.Xs.Descriptor], """{"alpha": 1.5}"""));
        Assert.Contains("alpha", e1.Message);
        var e2 = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new ContrastiveDecodingMethod(), [stories], "{}"));
        Assert.Contains("exactly 2", e2.Message);
        var other = stories with { Name = "other", Vocabulary = new VocabularyIdentity(2048, "abc", "gpt2") };
        var e3 = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new ContrastiveDecodingMethod(), [stories, other], "{}"));
        Assert.Contains("vocabulary", e3.Message);
    }
}
