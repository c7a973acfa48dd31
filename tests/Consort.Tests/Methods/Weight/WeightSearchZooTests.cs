using System.Text.Json.Nodes;
using Consort.Config;
using Consort.Evaluation;
using Consort.LlamaCpp;
using Consort.Methods;
using Consort.Methods.Weight;
using Consort.Testing;
using Xunit.Abstractions;

namespace Consort.Tests.Methods.Weight;

/// <summary>
/// The dev-scored weight searches (greedy_soup, expo, dare_ties) on the real zoo experts through the merge engine and
/// llama.cpp: what each search decided is read back from its evaluation log and its best.yml, and the returned model is
/// scored again on the same dev sample.
/// </summary>
public class WeightSearchZooTests(ITestOutputHelper output)
{
    private const int DevSize = 24;

    private static IFitData Dev() => ZooSearchTesting.Data("mixed", "dev");

    private static ConsortModel Zoo(string name) => ZooSearchTesting.Zoo(name);

    private static Task<double> Score(ConsortModel m, IFitData dev) => ZooSearchTesting.Score(m, dev.Sample(DevSize, 42));

    private static List<(string Key, double[] Point, double Score)> Log(string dir) => ZooSearchTesting.Log(dir);

    [Fact]
    public async Task Greedy_soup_never_accepts_a_member_that_lowers_the_dev_score()
    {
        using var dir = new TempDir();
        var dev = Dev();
        var members = new[] { Zoo("arith"), Zoo("facts_a"), Zoo("facts_b"), Zoo("base") };
        try
        {
            using var loader = new ModelSession();
            var lines = new List<string>();
            var hp = new JsonObject { ["dev_size"] = DevSize, ["temperature"] = 0, ["search_dir"] = dir.File("s") };
            using var soup = await MethodHarness.CreateAsync(new GreedySoupMethod(), members, hp.ToJsonString(), dev, name: "soup", loader: loader, log: lines.Add);
            foreach (var l in lines) output.WriteLine(l);
            var log = Log(dir.File("s"));
            var memberScores = Enumerable.Range(0, 4).Select(i => log.Single(e => e.Key == "member:" + i).Score).ToArray();
            var trials = log.Where(e => !e.Key.StartsWith("member:", StringComparison.Ordinal)).ToList();
            Assert.Equal(3, trials.Count); // one trial per member after the first
            // Replay the rule: a trial is kept only if it does not lower the current score.
            double current = memberScores.Max();
            var kept = new HashSet<int> { Array.IndexOf(memberScores, current) };
            foreach (var t in trials)
            {
                var inTrial = Enumerable.Range(0, 4).Where(i => t.Point[i] > 0).ToHashSet();
                Assert.True(kept.IsSubsetOf(inTrial) && inTrial.Count == kept.Count + 1, "each trial adds one member to the current soup");
                if (t.Score >= current) { kept = inTrial; current = t.Score; }
            }
            var yml = File.ReadAllText(dir.File("s/best.yml"));
            Assert.Equal(kept.Count, yml.Split("- model:").Length - 1);
            foreach (var i in kept) Assert.Contains(Path.GetFileName(members[i].Descriptor.WeightsPath!), yml);
            // The returned model is the accepted soup: its dev score, measured again, is the search's, and never below the best member.
            double final = await Score(soup, dev);
            output.WriteLine($"members {string.Join(", ", memberScores.Select(s => s.ToString("F3")))}; soup of {kept.Count} dev {final:F3}");
            Assert.Equal(current, final, 6);
            Assert.True(final >= memberScores.Max());
            Assert.Equal("greedy_soup", soup.Method);

            // A second run of the same search (as after a kill) reads every score back: nothing is scored again.
            var again = new List<string>();
            using (var soup2 = await MethodHarness.CreateAsync(new GreedySoupMethod(), members, hp.ToJsonString(), dev, name: "soup", loader: loader, log: again.Add))
                Assert.Equal(final, await Score(soup2, dev), 6);
            Assert.Contains(again, l => l.Contains($"resuming with {log.Count} evaluation(s)"));
            Assert.Equal(log.Count, Log(dir.File("s")).Count);
        }
        finally { foreach (var m in members) m.Dispose(); }
    }

    [Fact]
    public async Task Expo_picks_the_best_alpha_on_dev_and_extrapolates_best_from_worst()
    {
        using var dir = new TempDir();
        var dev = Dev();
        var members = new[] { Zoo("arith"), Zoo("base") };
        try
        {
            using var loader = new ModelSession();
            var hp = new JsonObject { ["alpha_mode"] = "optimized", ["alpha_candidates"] = new JsonArray(0.1, 0.5), ["dev_size"] = DevSize, ["temperature"] = 0, ["search_dir"] = dir.File("s") };
            using var expo = await MethodHarness.CreateAsync(new ExpoMethod(), members, hp.ToJsonString(), dev, name: "expo", loader: loader);
            var log = Log(dir.File("s"));
            var m = log.Where(e => e.Key.StartsWith("member:", StringComparison.Ordinal)).Select(e => e.Score).ToArray();
            int best = m[0] >= m[1] ? 0 : 1;
            var alphas = log.Where(e => !e.Key.StartsWith("member:", StringComparison.Ordinal)).ToList();
            Assert.Equal(2, alphas.Count);
            var chosen = alphas[alphas[0].Score >= alphas[1].Score ? 0 : 1];
            double alpha = Math.Round(chosen.Point[best] - 1, 9);
            Assert.Contains(alpha, new[] { 0.1, 0.5 });
            Assert.Equal(-alpha, chosen.Point[1 - best], 6);
            var yml = File.ReadAllText(dir.File("s/best.yml"));
            Assert.Contains($"weight: {1 + alpha:0.######}", yml.Replace(',', '.'));
            Assert.Contains($"weight: {-alpha:0.######}", yml.Replace(',', '.'));
            Assert.Equal(chosen.Score, await Score(expo, dev), 6);
        }
        finally { foreach (var x in members) x.Dispose(); }
    }

    [Fact]
    public async Task Dare_ties_honours_the_density_and_the_swarm_scores_every_particle()
    {
        using var dir = new TempDir();
        var dev = Dev();
        var members = new[] { Zoo("arith"), Zoo("facts_a") };
        var basePath = Consort.Training.Zoo.ResolveModel("zoo:base");
        try
        {
            using var loader = new ModelSession();
            async Task<byte[]> Merge(double density, string sub)
            {
                var hp = new JsonObject { ["base_model_name"] = basePath, ["density"] = density, ["search_dir"] = dir.File(sub) };
                using var m = await MethodHarness.CreateAsync(new DareTiesMethod(), members, hp.ToJsonString(), name: "dt", loader: loader);
                Assert.Contains($"density: {density:0.######}", File.ReadAllText(dir.File(sub + "/best.yml")));
                return File.ReadAllBytes(dir.File(sub + "/best.gguf"));
            }
            var full = await Merge(1.0, "d1");
            var sparse = await Merge(0.3, "d03");
            Assert.NotEqual(full, sparse); // entries were really dropped
            Assert.Equal(sparse, await Merge(0.3, "d03b")); // and the drop is seeded

            var lines = new List<string>();
            var opt = new JsonObject { ["mode"] = "optimized", ["base_model_name"] = basePath, ["population"] = 2, ["max_iterations"] = 2, ["dev_size"] = 12, ["temperature"] = 0, ["search_dir"] = dir.File("opt") };
            using var best = await MethodHarness.CreateAsync(new DareTiesMethod(), members, opt.ToJsonString(), dev, name: "dt", loader: loader, log: lines.Add);
            Assert.Contains(lines, l => l.Contains("swarm iteration 1/2"));
            var log = Log(dir.File("opt"));
            Assert.InRange(log.Count, 2, 4); // 2 particles x up to 2 iterations (repeated points come from the log)
            Assert.All(log, e => Assert.InRange(e.Point.Skip(2).Min(), 0.1, 1.0)); // densities stay in [min_density, 1]
        }
        finally { foreach (var x in members) x.Dispose(); }
    }

    [Fact]
    public void Members_of_different_architectures_or_without_dev_are_refused_before_work()
    {
        using var a = Zoo("arith");
        using var s = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, Name = "stories" });
        var e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new GreedySoupMethod(), [a.Descriptor, s.Descriptor], hasDev: true));
        Assert.Contains("members must share one architecture to be merged: 'arith' is", e.Message);
        e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new ExpoMethod(), [a.Descriptor, a.Descriptor with { Name = "b" }]));
        Assert.Contains("needs a task with a dev split", e.Message);
        e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new ExpoMethod(), [a.Descriptor, a.Descriptor with { Name = "b" }], """{"mode": "topk_bottomk", "k": 2}""", hasDev: true));
        Assert.Contains("hyperparameter 'k' = 2 is more than half", e.Message);
        e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new DareTiesMethod(), [a.Descriptor], hasDev: true));
        Assert.Contains("hyperparameter 'base_model_name' is required", e.Message);
        e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new DareTiesMethod(), [a.Descriptor], """{"base_model_name": "nope.gguf"}"""));
        Assert.Contains("is neither a member (arith) nor an existing GGUF file", e.Message);
    }
}
