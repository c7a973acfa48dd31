using System.Text.Json.Nodes;
using Consort.Evaluation;
using Consort.LlamaCpp;
using Consort.Methods;
using Consort.Methods.Api;
using Consort.Testing;
using Microsoft.Extensions.AI;
using Xunit.Abstractions;

namespace Consort.Tests.Methods.Api;

/// <summary>
/// co_llm and nudging on real zoo models through llama.cpp (greedy): the base model decodes, an expert of the same
/// family steps in where the base is unsure. Measured: each one's accuracy against the base alone, and the deferral
/// rate (the share of answer tokens the expert wrote).
/// </summary>
public class TokenLevelZooTests(ITestOutputHelper output)
{
    private const int Items = 40;

    private static EvalTask Task(string dataset) => EvalTask.Create(new JsonObject
    {
        ["dataset"] = Path.Combine(TestPaths.RepoRoot, "zoo", "datasets", dataset + ".json"), ["prompt"] = "{input}", ["max_tokens"] = 8,
        ["stop"] = new JsonArray("\n"), ["temperature"] = 0,
    }, EvalDataset.DefaultSearchFolders(TestPaths.RepoRoot));

    private static ConsortModel Zoo(string name) => LlamaModelFactory.Load(new LlamaModelOptions { Path = Consort.Training.Zoo.ResolveModel("zoo:" + name), Name = name });

    private static async Task<(double Score, List<ChatResponse> Responses)> Score(ConsortModel m, IReadOnlyList<FitExample> items)
    {
        var responses = new List<ChatResponse>();
        double sum = 0;
        foreach (var ex in items)
        {
            var r = await m.Chat.GetResponseAsync(ex.Messages, ex.Options);
            responses.Add(r);
            sum += ex.Score(r.Text);
        }
        return (sum / items.Count, responses);
    }

    private static double Rate(IEnumerable<ChatResponse> rs) =>
        rs.Sum(r => Convert.ToDouble(r.GetTrace()[0].Data!["deferral_rate"]) * Convert.ToInt32(r.GetTrace()[0].Data!["tokens"]))
        / Math.Max(1, rs.Sum(r => Convert.ToInt32(r.GetTrace()[0].Data!["tokens"])));

    [Fact]
    public async Task Co_llm_defers_the_base_models_unsure_tokens_to_the_arithmetic_expert()
    {
        var items = Task("arith").BuildFitData("test").Examples.Take(Items).ToList();
        using var b = Zoo("base");
        using var a = Zoo("arith");
        var (alone, _) = await Score(b, items);
        var (expert, _) = await Score(a, items);
        using var c = await MethodHarness.CreateAsync(new CoLlmMethod(), [b, a], """{"deferral": "top1", "deferral_threshold": 0.5}""");
        var (score, rs) = await Score(c, items);
        double rate = Rate(rs);
        output.WriteLine($"zoo:arith test, first {Items}: base {alone:F3}, arith {expert:F3}, co_llm (top1, threshold 0.5) {score:F3}, deferral rate {rate:P1}");
        Assert.InRange(rate, 0.01, 0.99);
        Assert.True(score > alone, $"co_llm {score:F3} not above the base alone {alone:F3}");
    }

    [Fact]
    public async Task Nudging_lets_the_facts_expert_write_where_the_base_is_unsure()
    {
        var items = Task("facts_a").BuildFitData("test").Examples.Take(Items).ToList();
        using var b = Zoo("base");
        using var f = Zoo("facts_a");
        var (alone, _) = await Score(b, items);
        var (expert, _) = await Score(f, items);
        using var n = await MethodHarness.CreateAsync(new NudgingMethod(), [b, f], """{"gamma": 0.4, "do_sample": false}""");
        var (score, rs) = await Score(n, items);
        double rate = Rate(rs);
        output.WriteLine($"zoo:facts_a test, first {Items}: base {alone:F3}, facts_a {expert:F3}, nudging (gamma 0.4) {score:F3}, nudged token share {rate:P1}");
        // The answers are one word, and nudging starts with the nudging model's first word (MoCo's state machine): it
        // writes nearly everything here; the story test below shows the two models taking turns.
        Assert.True(rate > 0.5, $"nudged token share {rate:P1}");
        Assert.True(score > alone, $"nudging {score:F3} not above the base alone {alone:F3}");
    }

    [Fact]
    public async Task Nudging_takes_turns_on_stories_where_the_base_is_unsure()
    {
        using var b = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, Name = "stories260k", ContextSize = 512 });
        using var x = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Llama2Xs, Name = "llama2xs" });
        using var n = await MethodHarness.CreateAsync(new NudgingMethod(), [b, x], """{"gamma": 0.4, "do_sample": false}""");
        string[] prompts = ["Once upon a time, there was a little boy named Tim.", "One day, Lily went to the park with her mom.", "Sue had a small cat."];
        var rs = new List<ChatResponse>();
        foreach (var p in prompts) rs.Add(await n.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, p)], new ChatOptions { MaxOutputTokens = 32, Temperature = 0 }));
        double rate = Rate(rs);
        int turns = rs.Sum(r => ((IEnumerable<Dictionary<string, object?>>)r.GetTrace()[0].Data!["spans"]!).Count());
        output.WriteLine($"stories, 3 prompts x 32 tokens: stories260k base, llama2xs nudging at gamma 0.4: nudged token share {rate:P1}, {turns} spans; first: {rs[0].Text}");
        Assert.InRange(rate, 0.01, 0.99);
        Assert.Contains(rs, r => ((IEnumerable<Dictionary<string, object?>>)r.GetTrace()[0].Data!["spans"]!).Select(s => s["model"]).Distinct().Count() == 2);
    }
}
