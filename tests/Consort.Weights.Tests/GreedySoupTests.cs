using System.Text.Json;
using Consort.Config;
using Consort.LlamaCpp;
using Consort.Methods.Weight;
using Consort.Testing;
using Microsoft.Extensions.AI;

namespace Consort.Weights.Tests;

public class GreedySoupTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public async Task The_greedy_selection_keeps_a_member_only_when_the_soup_does_not_get_worse()
    {
        // Singles: member 1 best, then 2, then 0. {1,2} scores lower than 1 alone (dropped); {1,0} higher (kept).
        var tried = new List<string>();
        var steps = await GreedySoupMethod.SelectAsync([0.3, 0.5, 0.4], (soup, _) =>
        {
            tried.Add(string.Join("+", soup));
            return Task.FromResult(soup.Contains(2) ? 0.45 : 0.6);
        });
        Assert.Equal(["1+2", "1+0"], tried);
        Assert.Equal([new SoupStep(1, 0.5, true), new SoupStep(2, 0.45, false), new SoupStep(0, 0.6, true)], steps);
    }

    [Fact]
    public async Task A_soup_of_zoo_experts_never_keeps_a_member_that_lowers_the_dev_score()
    {
        var zoo = Consort.Training.Zoo.Directory();
        var mixed = JsonDocument.Parse(File.ReadAllText(Path.Combine(zoo, "datasets", "mixed.json"))).RootElement;
        var options = new ChatOptions { MaxOutputTokens = 16, StopSequences = ["\n"] };
        var dev = TestFitData.FromPairs(mixed.GetProperty("dev").EnumerateArray().Select(e => (e.GetProperty("input").GetString()!, e.GetProperty("output").GetString()!)), options);
        ConsortModel Load(string name) => LlamaModelFactory.Load(new LlamaModelOptions { Path = Consort.Training.Zoo.ResolveModel("zoo:" + name), Name = name });
        using var arith = Load("arith");
        using var factsA = Load("facts_a");
        using var factsB = Load("facts_b");
        using var loader = new ModelSession();
        var logs = new List<string>();
        using var soup = await MethodHarness.CreateAsync(new GreedySoupMethod(), [arith, factsA, factsB], """{"dev_samples": 30}""", dev, name: "soup", loader: loader, log: logs.Add);
        foreach (var l in logs) output.WriteLine(l);
        Assert.Equal("greedy_soup", soup.Method);
        // Every soup tried is logged; what is kept never scores below what was kept before it.
        var singles = logs.Where(l => l.Contains("' dev score")).Select(Score).ToList();
        var soups = logs.Where(l => l.Contains("soup of ")).Select(Score).ToList();
        Assert.Equal(3, singles.Count);
        Assert.Equal(2, soups.Count);
        double best = singles.Max();
        foreach (var s in soups) if (s >= best) best = s;
        Assert.Contains(logs, l => l.Contains("greedy soup keeps") && l.Contains($"dev score {best:0.000}"));
        var text = (await soup.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "Q: 8+41= A:")], options)).Text;
        Assert.False(string.IsNullOrWhiteSpace(text));
        Assert.True(Directory.EnumerateFiles(WeightMergeMethod.CacheFolder, "soup-*.yml").Any(), "no mergekit recipe was written beside the soups");
    }

    private static double Score(string log) => double.Parse(System.Text.RegularExpressions.Regex.Match(log, @"dev score (\d\.\d+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public void Needs_dev_data_and_one_architecture()
    {
        var a = new ModelDescriptor { Name = "a", Access = ModelAccess.Weights | ModelAccess.FullLogits | ModelAccess.Text, Architecture = "llama", Parameters = 100, WeightsPath = "a.gguf", Vocabulary = new VocabularyIdentity(10, "h") };
        var b = a with { Name = "b", Parameters = 200 };
        Assert.Contains("dev split", Assert.Throws<ConfigException>(() => MethodHarness.Plan(new GreedySoupMethod(), [a, a with { Name = "c" }], "{}")).Message);
        var e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new GreedySoupMethod(), [a, b], "{}", hasDev: true));
        Assert.Contains("one architecture and size", e.Message);
        Assert.Contains("'b'", e.Message);
    }
}
