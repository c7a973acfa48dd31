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
/// The zoo's LoRA adapters (zoo:arith-lora, zoo:facts_a-lora, zoo:facts_b-lora) and the searches that combine adapters of one
/// base (lorahub, model_swarms with fast_merge_flag) on them, through llama.cpp: what each search did is read back from its
/// evaluation log and recipe; a search cancelled mid-way resumes from its log and ends where an uninterrupted one ends.
/// </summary>
public class LoraSearchZooTests(ITestOutputHelper output)
{
    private const int DevSize = 24;
    private static readonly string[] Skills = ["arith", "facts_a", "facts_b"];

    private static IFitData Data(string dataset, string split) => ZooSearchTesting.Data(dataset, split);

    private static ConsortModel Adapter(string skill)
    {
        Assert.True(Consort.Training.Zoo.TryResolveAdapter($"zoo:{skill}-lora", out var basePath, out var adapterPath));
        return LlamaModelFactory.Load(new LlamaModelOptions { Path = basePath, Name = skill + "-lora", Adapters = [new LoraAdapterOption(adapterPath)] });
    }

    private static ConsortModel[] Adapters() => Skills.Select(Adapter).ToArray();

    private static Task<double> Score(ConsortModel m, IReadOnlyList<FitExample> items) => ZooSearchTesting.Score(m, items);

    private static List<(string Key, double[] Point, double Score)> Log(string dir) => ZooSearchTesting.Log(dir);

    [Fact]
    public async Task Each_zoo_adapter_resolves_to_the_base_plus_its_file_and_beats_the_base_on_its_skill()
    {
        using var baseModel = LlamaModelFactory.Load(new LlamaModelOptions { Path = Consort.Training.Zoo.ResolveModel("zoo:base"), Name = "base" });
        foreach (var skill in Skills)
        {
            // The reference a config gives resolves to the base file with the adapter in its 'lora' list.
            var spec = Assert.IsType<GgufModelSpec>(ModelReferences.Parse(JsonValue.Create($"zoo:{skill}-lora"), TestPaths.RepoRoot));
            Assert.Equal(Path.GetFullPath(baseModel.Descriptor.WeightsPath!), Path.GetFullPath(spec.Path));
            Assert.EndsWith($"{skill}-lora.gguf", spec.Options["lora"]!.AsArray().Single()!.GetValue<string>());
            using var adapter = Adapter(skill);
            Assert.Single(adapter.Descriptor.Adapters);
            var test = Data(skill, "test").Sample(40, 7);
            double b = await Score(baseModel, test), a = await Score(adapter, test);
            output.WriteLine($"{skill}: base {b:F3}, {skill}-lora {a:F3} on 40 test items");
            Assert.True(a >= b + 0.05, $"{skill}-lora scores {a:F3} against the base's {b:F3}");
        }
    }

    [Fact]
    public async Task Lorahub_improves_its_dev_objective_over_the_base_and_a_cancelled_search_resumes_to_the_same_result()
    {
        using var dir = new TempDir();
        var dev = Data("mixed", "dev");
        var members = Adapters();
        try
        {
            using var loader = new ModelSession();
            var hp = new JsonObject { ["lorahub_dev_samples"] = DevSize, ["max_inference_step"] = 16, ["temperature"] = 0, ["search_dir"] = dir.File("full") };
            var lines = new List<string>();
            using (var hub = await MethodHarness.CreateAsync(new LoraHubMethod(), members, hp.ToJsonString(), dev, name: "hub", loader: loader, log: lines.Add))
            {
                foreach (var l in lines) output.WriteLine(l);
                var log = Log(dir.File("full"));
                Assert.Equal(16, log.Count);
                Assert.Equal("0,0,0", log[0].Key); // the start: the base
                double Objective((string, double[] Point, double Score) e) => LoraHubMethod.Objective(e.Score, e.Point, 0.05);
                var best = log.MinBy(Objective);
                output.WriteLine($"start objective {Objective(log[0]):F4}, best {Objective(best):F4} at [{string.Join(", ", best.Point.Select(v => v.ToString("F3")))}]");
                Assert.True(Objective(best) < Objective(log[0]), "the search improves on its starting point");
                Assert.All(log, e => Assert.All(e.Point, v => Assert.InRange(v, -1.5, 1.5)));
                Assert.Contains(lines, l => l.Contains("evaluation 16/16"));
                // The result is the best candidate (base + adapters at its coefficients): its dev score, measured again, is the logged one.
                Assert.Equal(best.Score, await Score(hub, dev.Sample(DevSize, 42)), 6);
                var yml = File.ReadAllText(dir.File("full/best.yml"));
                Assert.Contains("merge_method: task_arithmetic", yml);
                Assert.Contains("base.gguf+", yml);
                Assert.True(File.Exists(dir.File("full/best.gguf")));
            }

            // Cancel after 6 evaluations (a kill), run again: the 6 come from the log, the rest is scored, and it ends where the full run ended.
            var cut = new CancellationTokenSource();
            var hp2 = (JsonObject)hp.DeepClone();
            hp2["search_dir"] = dir.File("cut");
            int seen = 0;
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => MethodHarness.CreateAsync(new LoraHubMethod(), members, hp2.ToJsonString(), dev, name: "hub", loader: loader,
                log: l => { if (l.Contains("evaluation ") && ++seen == 6) cut.Cancel(); }, cancellationToken: cut.Token));
            int before = Log(dir.File("cut")).Count;
            Assert.InRange(before, 6, 7);
            var again = new List<string>();
            using var resumed = await MethodHarness.CreateAsync(new LoraHubMethod(), members, hp2.ToJsonString(), dev, name: "hub", loader: loader, log: again.Add);
            Assert.Contains(again, l => l.Contains($"resuming with {before} evaluation(s)"));
            Assert.Equal(Log(dir.File("full")).Select(e => e.Key), Log(dir.File("cut")).Select(e => e.Key));
            Assert.Equal(File.ReadAllText(dir.File("full/best.yml")), File.ReadAllText(dir.File("cut/best.yml")));
        }
        finally { foreach (var m in members) m.Dispose(); }
    }

    [Fact]
    public async Task Model_swarms_over_adapters_starts_at_the_members_and_improves_on_the_best_member_on_dev()
    {
        // Two members made of one adapter at too weak (0.5) and too strong (2.0) a scale: a particle between them (coefficients c
        // give scale 0.5 c_1 + 2 c_2) can score better than both, which is what the swarm has to find by moving through weight space.
        using var dir = new TempDir();
        var dev = Data("facts_a", "dev");
        Assert.True(Consort.Training.Zoo.TryResolveAdapter("zoo:facts_a-lora", out var basePath, out var adapterPath));
        var members = new[] { 0.5f, 2f }.Select(s => LlamaModelFactory.Load(new LlamaModelOptions
            { Path = basePath, Name = $"facts_a-lora@{s}", Adapters = [new LoraAdapterOption(adapterPath, s)] })).ToArray();
        try
        {
            using var loader = new ModelSession();
            var hp = new JsonObject { ["fast_merge_flag"] = 1, ["max_iterations"] = 6, ["dev_size"] = 40, ["temperature"] = 0, ["search_dir"] = dir.File("s") };
            var lines = new List<string>();
            using var swarm = await MethodHarness.CreateAsync(new ModelSwarmsMethod(), members, hp.ToJsonString(), dev, name: "swarm", loader: loader, log: lines.Add);
            foreach (var l in lines) output.WriteLine(l);
            var log = Log(dir.File("s"));
            var start = Enumerable.Range(0, 2).Select(i => log.Single(e => e.Key == "member:" + i).Score).ToArray();
            Assert.Contains(lines, l => l.Contains("iteration 1/6"));
            var best = log.MaxBy(e => e.Score);
            output.WriteLine($"members {string.Join(", ", start.Select(s => s.ToString("F3")))}; best particle {best.Score:F3} at [{string.Join(", ", best.Point.Select(v => v.ToString("F3")))}]");
            Assert.True(best.Score > start.Max(), "the swarm finds a point better than every member on dev");
            Assert.Equal(best.Score, await Score(swarm, dev.Sample(40, 42)), 6);
            var yml = File.ReadAllText(dir.File("s/best.yml"));
            Assert.Contains("merge_method: task_arithmetic", yml);
            // The recipe's weight is the particle's coefficients times each member's own scale, summed over the one adapter file.
            Assert.Contains($"weight: {0.5 * best.Point[0] + 2 * best.Point[1]:0.######}", yml);
            Assert.Single(yml.Split('\n'), l => l.Contains("- model:"));

            // Run again over the same folder (as after a kill): every evaluation comes from the log and the swarm ends at the same best.
            var again = new List<string>();
            using (await MethodHarness.CreateAsync(new ModelSwarmsMethod(), members, hp.ToJsonString(), dev, name: "swarm", loader: loader, log: again.Add)) { }
            Assert.Contains(again, l => l.Contains($"resuming with {log.Count} evaluation(s)"));
            Assert.Equal(log.Count, Log(dir.File("s")).Count);
            Assert.Equal(yml, File.ReadAllText(dir.File("s/best.yml")));
        }
        finally { foreach (var m in members) m.Dispose(); }
    }

    [Fact]
    public async Task A_model_swarm_of_whole_models_merges_particles_without_files_in_the_search_folder()
    {
        using var dir = new TempDir();
        var dev = Data("mixed", "dev");
        var members = new[] { "arith", "facts_a" }.Select(n => ZooSearchTesting.Zoo(n)).ToArray();
        try
        {
            using var loader = new ModelSession();
            var hp = new JsonObject { ["max_iterations"] = 2, ["dev_size"] = 8, ["temperature"] = 0, ["search_dir"] = dir.File("s") };
            using var swarm = await MethodHarness.CreateAsync(new ModelSwarmsMethod(), members, hp.ToJsonString(), dev, name: "swarm", loader: loader);
            var log = Log(dir.File("s"));
            Assert.Contains(log, e => e.Key == "member:0");
            Assert.Contains(log, e => !e.Key.StartsWith("member:", StringComparison.Ordinal)); // merged particles were scored
            Assert.Equal(["best.gguf", "best.yml", "evaluations.jsonl"], Directory.GetFiles(dir.File("s")).Select(Path.GetFileName).Order().ToArray());
            Assert.Contains("merge_method: linear", File.ReadAllText(dir.File("s/best.yml")));
        }
        finally { foreach (var m in members) m.Dispose(); }
    }

    [Fact]
    public void Adapters_of_another_base_or_non_adapter_members_are_refused_before_work()
    {
        // An adapter trained for zoo:base given to a model of another shape: refused when the entry is described, before llama.cpp loads it.
        Assert.True(Consort.Training.Zoo.TryResolveAdapter("zoo:arith-lora", out _, out var arithLora));
        var spec = new GgufModelSpec("wrong", TestPaths.Stories260K, TestPaths.Stories260K, new JsonObject { ["lora"] = new JsonArray(arithLora) });
        var e = Assert.Throws<ConfigException>(() => new LlamaModelProvider().Describe(spec));
        output.WriteLine(e.Message);
        Assert.Contains($"model 'wrong': LoRA adapter {arithLora} does not fit", e.Message);
        Assert.Contains("an adapter for a different base model", e.Message);

        using var a = Adapter("arith");
        using var f = Adapter("facts_a");
        using var full = LlamaModelFactory.Load(new LlamaModelOptions { Path = Consort.Training.Zoo.ResolveModel("zoo:facts_b"), Name = "facts_b" });
        e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new LoraHubMethod(), [a.Descriptor, full.Descriptor], hasDev: true));
        Assert.Contains("model 'facts_b' is not a LoRA adapter", e.Message);
        // Adapters of two different base files.
        var other = f.Descriptor with { WeightsPath = full.Descriptor.WeightsPath };
        e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new LoraHubMethod(), [a.Descriptor, other], hasDev: true));
        Assert.Contains("members must be LoRA adapters of one base model: 'arith-lora' adapts", e.Message);
        e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new ModelSwarmsMethod(), [a.Descriptor, f.Descriptor], hasDev: true));
        Assert.Contains("hyperparameter 'fast_merge_flag' is off but the members are LoRA adapters", e.Message);
        // Searches that merge whole files would leave the adapters out: refused.
        e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new GreedySoupMethod(), [a.Descriptor, f.Descriptor], hasDev: true));
        Assert.Contains("model 'arith-lora' is a LoRA adapter of base.gguf", e.Message);
        e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new LoraHubMethod(), [a.Descriptor, f.Descriptor]));
        Assert.Contains("needs a task with a dev split", e.Message);
    }
}
