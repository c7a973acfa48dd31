using System.Text.Json;
using Consort.LlamaCpp;
using Consort.Methods.Logit;
using Consort.Testing;
using Microsoft.Extensions.AI;
using Xunit;

namespace Consort.Tests.Methods.Logit;

/// <summary>Three zoo models sharing the byte vocabulary: a facts expert as the base, the arithmetic expert and the zoo's base it was tuned from.</summary>
public sealed class ZooTrioFixture : IDisposable
{
    public ZooTrioFixture()
    {
        ConsortModel Load(string name) => LlamaModelFactory.Load(new LlamaModelOptions { Path = Consort.Training.Zoo.ResolveModel("zoo:" + name), Name = name });
        FactsA = Load("facts_a"); Arith = Load("arith"); Base = Load("base");
    }

    public ConsortModel FactsA { get; }
    public ConsortModel Arith { get; }
    public ConsortModel Base { get; }

    public void Dispose()
    {
        FactsA.Dispose(); Arith.Dispose(); Base.Dispose();
    }
}

public sealed class ProxyTuningTests(ZooTrioFixture fx, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<ZooTrioFixture>
{
    [Fact]
    public async Task Follows_base_plus_alpha_expert_minus_anti_expert_on_real_models()
    {
        const double alpha = 0.8;
        using var proxy = await MethodHarness.CreateAsync(new ProxyTuningMethod(), [fx.FactsA, fx.Arith, fx.Base], $$"""{"alpha": {{alpha}}}""");
        var prompt = LogitReference.Prompt(fx.FactsA, "Q: 8+41= A:");
        var (tokens, differs) = await LogitReference.AssertFollowsAsync(proxy.Tokens!, [fx.FactsA.Tokens!, fx.Arith.Tokens!, fx.Base.Tokens!], lps =>
        {
            var s = new float[lps[0].Length];
            for (int v = 0; v < s.Length; v++) s[v] = (float)(lps[0][v] + alpha * (lps[1][v] - lps[2][v]));
            return s;
        }, prompt, 6);
        output.WriteLine($"proxy tuning: \"{fx.FactsA.Tokens!.Tokenizer.Decode(tokens)}\" ({differs} of {tokens.Count} tokens differ from the base's greedy choice)");
        Assert.True(differs > 0, "the expert's offset never changed the base's choice");
    }

    [Fact]
    public async Task The_arithmetic_offset_teaches_the_facts_model_to_add()
    {
        // zoo:facts_a cannot add; arith - base is what arithmetic tuning taught: added to facts_a it should answer sums.
        var items = JsonDocument.Parse(File.ReadAllText(Path.Combine(Consort.Training.Zoo.Directory(), "datasets", "arith.json")))
            .RootElement.GetProperty("dev").EnumerateArray().Take(20).Select(e => (e.GetProperty("input").GetString()!, e.GetProperty("output").GetString()!)).ToList();
        using var proxy = await MethodHarness.CreateAsync(new ProxyTuningMethod(), [fx.FactsA, fx.Arith, fx.Base], """{"max_tokens": 6}""");
        var options = new ChatOptions { MaxOutputTokens = 6, StopSequences = ["\n"] };
        async Task<int> Correct(ConsortModel m)
        {
            int ok = 0;
            foreach (var (q, a) in items)
                if ((await m.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, q)], options)).Text.Trim() == a) ok++;
            return ok;
        }
        int alone = await Correct(fx.FactsA), tuned = await Correct(proxy), expert = await Correct(fx.Arith);
        output.WriteLine($"arith dev (20): facts_a {alone}, proxy facts_a + (arith - base) {tuned}, arith expert {expert}");
        Assert.True(tuned > alone, $"proxy tuning {tuned}/20 not above facts_a alone {alone}/20");
    }

    [Fact]
    public void Needs_three_members()
    {
        var e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new ProxyTuningMethod(), [fx.FactsA.Descriptor, fx.Arith.Descriptor], "{}"));
        Assert.Contains("exactly 3", e.Message);
    }
}
