using Microsoft.Extensions.AI;
using Consort.Methods.Logit;
using Consort.Testing;
using Consort.Tests.LlamaCpp;
using Xunit;

namespace Consort.Tests.Methods.Logit;

public sealed class LogitContrastiveTests(LlamaFixture fx, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<LlamaFixture>
{
    [Fact]
    public void Coefficients_are_best_plus_lambda_times_top_minus_bottom()
    {
        // Ranking (best first): members 2, 0, 3, 1; k = 2: top {2, 0}, bottom {1, 3}.
        var c = LogitContrastiveMethod.Coefficients([2, 0, 3, 1], 4, 2, 0.2);
        Assert.Equal([0.2, -0.2, 1.2, -0.2], c.Select(x => Math.Round(x, 9)));
        Assert.Equal(1.0, c.Sum(), 9);
    }

    [Fact]
    public async Task Ranks_members_on_dev_and_follows_the_reference_formula_on_real_models()
    {
        // Dev golds are stories260k's own greedy continuations, so it must rank first wherever llama2xs writes differently.
        string[] prompts = ["Once upon a time, there was a little", "One day, Lily went to the", "Tom had a big red", "The sun was"];
        var options = new Microsoft.Extensions.AI.ChatOptions { MaxOutputTokens = 6 };
        var golds = new List<(string, string)>();
        int differ = 0;
        foreach (var p in prompts)
        {
            var gs = (await fx.Stories.Chat.GetResponseAsync([new Microsoft.Extensions.AI.ChatMessage(Microsoft.Extensions.AI.ChatRole.User, p)], options)).Text;
            var gx = (await fx.Xs.Chat.GetResponseAsync([new Microsoft.Extensions.AI.ChatMessage(Microsoft.Extensions.AI.ChatRole.User, p)], options)).Text;
            if (gs.Trim() != gx.Trim()) differ++;
            golds.Add((p, gs));
        }
        Assert.True(differ > 0, "both models write the same continuations: the ranking would be a tie");
        var dev = TestFitData.FromPairs(golds, options);
        var logs = new List<string>();
        using var lc = await MethodHarness.CreateAsync(new LogitContrastiveMethod(), [fx.Xs, fx.Stories], """{"lambda_": 0.5}""", dev, log: logs.Add);
        foreach (var l in logs) output.WriteLine(l);
        // The better (stories260k, member 1) gets 1 + lambda, the worse -lambda.
        Assert.Equal([-0.5, 1.5], ((FusedTokenModel)lc.Tokens!).Weights.Select(x => Math.Round(x, 9)));
        int best = 1;
        var members = new[] { fx.Xs.Tokens!, fx.Stories.Tokens! };
        var prompt = LogitReference.Prompt(fx.Stories, "The little cat");
        var (tokens, _) = await LogitReference.AssertFollowsAsync(lc.Tokens!, [members[best], members[1 - best]], lps =>
        {
            var s = new float[lps[0].Length];
            for (int v = 0; v < s.Length; v++) s[v] = (float)(1.5 * lps[0][v] - 0.5 * lps[1][v]);
            return s;
        }, prompt, 16);
        output.WriteLine($"logit contrastive: \"{members[0].Tokenizer.Decode(tokens)}\"");
    }

    [Fact]
    public async Task A_fixed_ranking_needs_no_dev_and_bad_rankings_are_refused()
    {
        using var lc = await MethodHarness.CreateAsync(new LogitContrastiveMethod(), [fx.Stories, fx.Xs], """{"ranking": ["llama2xs", "stories260k"]}""");
        Assert.Equal([-0.2, 1.2], ((FusedTokenModel)lc.Tokens!).Weights.Select(x => Math.Round(x, 9)));
        var d = new[] { fx.Stories.Descriptor, fx.Xs.Descriptor };
        Assert.Contains("dev split", Assert.Throws<ConfigException>(() => MethodHarness.Plan(new LogitContrastiveMethod(), d, "{}")).Message);
        Assert.Contains("not a member", Assert.Throws<ConfigException>(() => MethodHarness.Plan(new LogitContrastiveMethod(), d, """{"ranking": ["x", "y"]}""")).Message);
        Assert.Contains("each of the 2", Assert.Throws<ConfigException>(() => MethodHarness.Plan(new LogitContrastiveMethod(), d, """{"ranking": ["llama2xs"]}""")).Message);
        Assert.Contains("at most k = 1", Assert.Throws<ConfigException>(() => MethodHarness.Plan(new LogitContrastiveMethod(), d, """{"k": 2, "ranking": ["llama2xs", "stories260k"]}""")).Message);
    }
}
