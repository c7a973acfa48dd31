using System.Diagnostics;
using System.Text.Json;
using Consort.Formats.Gguf;
using Consort.Training.Skills;

namespace Consort.Training;

/// <summary>Training of one team model.</summary>
/// <param name="Steps">Optimizer steps (0: not built).</param>
/// <param name="Batch">Windows per step.</param>
/// <param name="SeqLen">Tokens per window.</param>
/// <param name="LearningRate">Peak learning rate (warm-up 20 steps, cosine to a tenth).</param>
public sealed record TeamStage(int Steps, int Batch, int SeqLen, float LearningRate)
{
    /// <summary>The optimizer settings.</summary>
    public OptimizerSettings Optimizer => new() { LearningRate = LearningRate, WarmupSteps = 20, MinLrRatio = 0.1f };
}

/// <summary>Settings of a zoo build (all recorded in the manifest).</summary>
public sealed record ZooBuildSettings
{
    /// <summary>Seed of the skill data (made-up world, question splits).</summary>
    public int DataSeed { get; init; } = 1234;
    /// <summary>Seed of the base model's random initialization.</summary>
    public int InitSeed { get; init; } = 1;
    /// <summary>ggml threads for the base model (and llama.cpp scoring).</summary>
    public int Threads { get; init; } = 1;
    /// <summary>ggml threads per expert.</summary>
    public int ExpertThreads { get; init; } = 1;
    /// <summary>Experts trained at the same time.</summary>
    public int ParallelExperts { get; init; } = 3;
    /// <summary>Base model steps.</summary>
    public int BaseSteps { get; init; } = 450;
    /// <summary>Steps per expert.</summary>
    public int ExpertSteps { get; init; } = 500;
    /// <summary>Windows per step.</summary>
    public int Batch { get; init; } = 16;
    /// <summary>Tokens per window.</summary>
    public int SeqLen { get; init; } = 64;
    /// <summary>Base optimizer.</summary>
    public OptimizerSettings BaseOptimizer { get; init; } = new() { LearningRate = 2e-3f, WarmupSteps = 30, MinLrRatio = 0.1f };
    /// <summary>Expert optimizer.</summary>
    public OptimizerSettings ExpertOptimizer { get; init; } = new() { LearningRate = 2e-3f, WarmupSteps = 20, MinLrRatio = 0.1f };
    /// <summary>Experts' loss on answers only (the question tokens of a pair are masked).</summary>
    public bool ExpertAnswerOnly { get; init; } = true;
    /// <summary>
    /// Second-stage steps per expert (skill to steps): the saved expert is trained further with a fresh warm-up + cosine
    /// schedule, for skills that need more than <see cref="ExpertSteps"/>.
    /// </summary>
    public Dictionary<string, int> ExtraExpertSteps { get; init; } = new() { [ArithmeticSkill.Name] = 800 };
    /// <summary>
    /// Team models (see <see cref="TeamSkills"/>): experts fine-tuned from the finished experts to abstain, state knowledge
    /// and keep their answer among others', and a generalist fine-tuned from the base to answer from context. Steps 0 skips one.
    /// </summary>
    public Dictionary<string, TeamStage> Team { get; init; } = new()
    {
        // Reading from context needs whole prompts in a window (zoo-experiments.md): 96 tokens hold three cards and the question.
        ["team_reader"] = new(1000, 8, 96, 3e-3f),
        // Experts read short lists too (other answers, a blackboard): 96-token windows hold those prompts.
        ["team_facts_a"] = new(250, 12, 96, 1e-3f),
        ["team_facts_b"] = new(250, 12, 96, 1e-3f),
        // The addition skill is fragile: a lower rate keeps it (2e-3 lost most of it in 200 steps, measured).
        ["team_arith"] = new(250, 12, 96, 5e-4f),
    };
    /// <summary>Context length written to the team models' GGUF: longer prompts than their 128-token training windows
    /// run (the default prompts of real-model methods), though they only follow the zoo dialect.</summary>
    public int TeamContext { get; init; } = 2048;
    /// <summary>Training jobs (and scoring jobs) that run at once after the first stage.</summary>
    public int ParallelJobs { get; init; } = 2;
    /// <summary>Tensor type of the committed matrices.</summary>
    public GgmlType TensorType { get; init; } = GgmlType.F16;
    /// <summary>Model shape.</summary>
    public TinyLlamaConfig Architecture { get; init; } = new();
    /// <summary>The LoRA adapter stage (after the full models).</summary>
    public ZooAdapterSettings Adapters { get; init; } = new();
}

/// <summary>
/// Builds the zoo: generates the skill datasets, trains a base model on generic text plus the question formats, fine-tunes
/// one expert per skill from it, scores every model on every skill through llama.cpp, and writes GGUF files + manifest.
/// </summary>
public sealed class ZooBuilder(ZooBuildSettings settings, Action<string>? log = null)
{
    private void Log(string s) => log?.Invoke(s);

    /// <summary>Skills with an expert each, in order.</summary>
    public static readonly string[] Skills = [ArithmeticSkill.Name, FactsWorld.HalfA, FactsWorld.HalfB];

    /// <summary>Team models in build order: name, the zoo model it is fine-tuned from, the skill it knows (null: none).</summary>
    public static readonly (string Name, string Parent, string? Skill)[] Team =
        [("team_reader", "base", null), ("team_facts_a", FactsWorld.HalfA, FactsWorld.HalfA), ("team_facts_b", FactsWorld.HalfB, FactsWorld.HalfB), ("team_arith", ArithmeticSkill.Name, ArithmeticSkill.Name)];

    /// <summary>Generates every dataset of the zoo for <paramref name="dataSeed"/> (skill name to data, plus "mixed").</summary>
    public static Dictionary<string, SkillData> GenerateData(int dataSeed)
    {
        var world = new FactsWorld(dataSeed);
        var d = new Dictionary<string, SkillData>
        {
            [ArithmeticSkill.Name] = ArithmeticSkill.Generate(dataSeed),
            [FactsWorld.HalfA] = world.Half(FactsWorld.HalfA),
            [FactsWorld.HalfB] = world.Half(FactsWorld.HalfB),
        };
        // Mixed: equal parts of each skill's own dev/test questions.
        d["mixed"] = new("mixed", [],
            Skills.SelectMany(s => d[s].Dev.Take(40)).ToList(),
            Skills.SelectMany(s => d[s].Test.Take(60)).ToList());
        return d;
    }

    /// <summary>
    /// Writes a dataset in the shared layout (dev/test, exact_match), declaring the plain completion prompt the zoo's base
    /// models need ("Q: 7+48= A:" continued up to the end of the line): a run that names the dataset bare uses it for
    /// models without a chat template instead of an instruction they cannot follow.
    /// </summary>
    public static void WriteDataset(string path, SkillData data)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var completion = new { prompt = "{input}", max_tokens = 16, stop = new[] { "\n" } };
        var obj = new { dataset = "zoo_" + data.Skill, task_type = "exact_match", completion, dev = data.Dev, test = data.Test };
        File.WriteAllText(path, JsonSerializer.Serialize(obj, new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n");
    }

    /// <summary>Runs the build into <paramref name="outDir"/> and returns the manifest (also written there).</summary>
    /// <param name="outDir">Output folder.</param>
    /// <param name="resume">Keep the base and first-stage experts of a finished build already in <paramref name="outDir"/>
    /// (checked against its manifest) and run only the missing second stages and the scoring.</param>
    /// <param name="ct">Cancellation.</param>
    public ZooManifest Build(string outDir, bool resume = false, CancellationToken ct = default)
    {
        var total = Stopwatch.StartNew();
        Directory.CreateDirectory(outDir);
        var s = settings;
        var data = GenerateData(s.DataSeed);
        var world = new FactsWorld(s.DataSeed);
        var datasets = new List<ZooDataset>();
        foreach (var name in Skills.Append("mixed"))
        {
            var rel = Path.Combine("datasets", name + ".json");
            WriteDataset(Path.Combine(outDir, rel), data[name]);
            datasets.Add(new() { Name = name, File = rel.Replace('\\', '/'), Dev = data[name].Dev.Count, Test = data[name].Test.Count, Sha256 = Zoo.Sha256(Path.Combine(outDir, rel)) });
        }
        Log($"datasets: {string.Join(", ", datasets.Select(d => $"{d.Name} ({d.Dev} dev / {d.Test} test)"))}");

        // Sources: the base sees generic text, the arithmetic training split and facts about people outside both halves.
        var arithTrain = data[ArithmeticSkill.Name].Train;
        var others = world.Others();
        Func<Random, TrainingExample> Pairs(IReadOnlyList<SkillItem> items, bool answerOnly) =>
            rng => { var it = items[rng.Next(items.Count)]; return TrainingExample.FromPair(it.Input, " " + it.Output, answerOnly); };
        var baseMix = new Dictionary<string, double> { ["generic_text"] = 0.2, ["arith_train"] = 0.4, ["facts_other_people"] = 0.4 };
        var baseSource = BatchSampler.Mix((0.2, rng => TrainingExample.FromText(GenericText.Next(rng))), (0.4, Pairs(arithTrain, false)), (0.4, Pairs(others, false)));

        var models = new List<ZooModel>();
        string basePath = Path.Combine(outDir, "base.gguf");
        double earlierSeconds = 0;
        var previous = resume ? ZooManifest.Load(Path.Combine(outDir, "manifest.json")) : null;
        if (previous is not null)
        {
            if (previous.DataSeed != s.DataSeed) throw new ConsortException($"--resume: the zoo in {outDir} was built with data seed {previous.DataSeed}, not {s.DataSeed}");
            foreach (var m in previous.Models)
                if (Zoo.Sha256(Path.Combine(outDir, m.File)) != m.Sha256) throw new ConsortException($"--resume: {m.File} does not match its manifest digest");
            models.AddRange(previous.Models);   // scores kept: the files match their digests (retrained ones are scored again)
            earlierSeconds = previous.BuildSeconds;
            Log($"resuming: {models.Count} models from the manifest ({earlierSeconds:F0} s of earlier build time)");
        }
        else
        {
            using (var t = new TinyLlamaTrainer(s.Architecture, s.Batch, s.SeqLen, s.Threads) { Optimizer = s.BaseOptimizer })
            {
                t.InitializeRandom(s.InitSeed);
                Log($"base: {s.BaseSteps} steps from random init ({s.Architecture.ParameterCount:N0} parameters)");
                var r = TrainingLoop.Run(t, new BatchSampler(baseSource, s.Batch, s.SeqLen, s.DataSeed + 1), new BatchSampler(baseSource, s.Batch, s.SeqLen, s.DataSeed + 101),
                    new TrainingPlan { Steps = s.BaseSteps, EvalEvery = 0, ReportEvery = 100 }, p => Log(Format("base", p)), ct);
                t.SaveGguf(basePath, "consort-zoo-base", s.TensorType, Meta("base", null));
                models.Add(Model("base", "base.gguf", "base", null, basePath, Training(null, s.InitSeed, s.DataSeed + 1, baseMix, false, s.BaseSteps, s.BaseOptimizer, r)));
                Log($"base: done in {r.Seconds:F0} s, loss {r.FinalLoss:F3}, eval {r.EvalLoss:F3}, {r.TokensPerSecond:F0} tok/s");
            }

            // Experts are independent: train them side by side, one ggml thread each (ggml's spinning thread barriers
            // collapse when a multi-thread job shares busy cores; separate single-thread jobs degrade gracefully).
            var experts = new ZooModel[Skills.Length];
            Parallel.For(0, Skills.Length, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, s.ParallelExperts), CancellationToken = ct }, i =>
            {
                var skill = Skills[i];
                var file = skill + ".gguf";
                var path = Path.Combine(outDir, file);
                using var t = new TinyLlamaTrainer(s.Architecture, s.Batch, s.SeqLen, s.ExpertThreads) { Optimizer = s.ExpertOptimizer };
                t.LoadGguf(basePath);
                var src = Pairs(data[skill].Train, s.ExpertAnswerOnly);
                int seed = s.DataSeed + 10 * (i + 1);
                Log($"{skill}: {s.ExpertSteps} steps from base on {data[skill].Train.Count} training questions");
                var r = TrainingLoop.Run(t, new BatchSampler(src, s.Batch, s.SeqLen, seed), new BatchSampler(Pairs(data[skill].Test, s.ExpertAnswerOnly), s.Batch, s.SeqLen, seed + 1),
                    new TrainingPlan { Steps = s.ExpertSteps, EvalEvery = 0, ReportEvery = 100 }, p => Log(Format(skill, p)), ct);
                t.SaveGguf(path, "consort-zoo-" + skill, s.TensorType, Meta("expert", skill));
                experts[i] = Model(skill, file, "expert", skill, path,
                    Training("base", null, seed, new() { [skill + "_train"] = 1.0 }, s.ExpertAnswerOnly, s.ExpertSteps, s.ExpertOptimizer, r));
                Log($"{skill}: done in {r.Seconds:F0} s, loss {r.FinalLoss:F3}, eval {r.EvalLoss:F3}, {r.TokensPerSecond:F0} tok/s");
            });
            models.AddRange(experts);
        }

        // After the first stage every remaining job (second stages, team models, scoring) is independent of the others but
        // for its parent, so they share ParallelJobs single-thread slots, longest chain first; each job's result does not
        // depend on what runs beside it (single-thread ggml and llama.cpp are deterministic).
        var jobs = new List<BuildJob>();
        foreach (var (skill, steps) in s.ExtraExpertSteps.Where(kv => kv.Value > 0 && models.Any(m => m.Name == kv.Key && m.ExtraTraining is null)))
        {
            jobs.Add(new(skill + "/2", [], () =>
            {
                int idx = models.FindIndex(m => m.Name == skill);
                var path = Path.Combine(outDir, models[idx].File);
                using var t = new TinyLlamaTrainer(s.Architecture, s.Batch, s.SeqLen, s.ExpertThreads) { Optimizer = s.ExpertOptimizer };
                t.LoadGguf(path);
                var src = Pairs(data[skill].Train, s.ExpertAnswerOnly);
                int seed = s.DataSeed + 10 * (Array.IndexOf(Skills, skill) + 1) + 5;
                Log($"{skill}: second stage, {steps} more steps");
                var r = TrainingLoop.Run(t, new BatchSampler(src, s.Batch, s.SeqLen, seed), new BatchSampler(Pairs(data[skill].Test, s.ExpertAnswerOnly), s.Batch, s.SeqLen, seed + 1),
                    new TrainingPlan { Steps = steps, EvalEvery = 0, ReportEvery = 100 }, p => Log(Format(skill + "/2", p)), ct);
                t.SaveGguf(path, "consort-zoo-" + skill, s.TensorType, Meta("expert", skill));
                var extra = Training(skill + " (first stage)", null, seed, new() { [skill + "_train"] = 1.0 }, s.ExpertAnswerOnly, steps, s.ExpertOptimizer, r) with { Batch = s.Batch, SeqLen = s.SeqLen };
                lock (models) models[idx] = models[idx] with { Bytes = new FileInfo(path).Length, Sha256 = Zoo.Sha256(path), ExtraTraining = extra, Scores = new() };
                Log($"{skill}: second stage done in {r.Seconds:F0} s, loss {r.FinalLoss:F3}");
            }));
        }
        var team = new TeamSkills(s.DataSeed, world, data[ArithmeticSkill.Name]);
        // A team model whose parent is still training goes first: it is on the longest chain.
        foreach (int k in Enumerable.Range(0, Team.Length).OrderBy(k => jobs.Any(j => j.Name == Team[k].Parent + "/2") ? 0 : 1))
        {
            var (name, parent, skill) = Team[k];
            if (!s.Team.TryGetValue(name, out var stage) || stage.Steps <= 0 || models.Any(m => m.Name == name)) continue;
            int steps = stage.Steps;
            int seed = s.DataSeed + 200 + 10 * k;
            // A parent still in training (the arith second stage) must finish first.
            string[] after = jobs.Where(j => j.Name == parent + "/2").Select(j => j.Name).ToArray();
            jobs.Add(new(name, after, () =>
            {
                var parentPath = Path.Combine(outDir, models.First(m => m.Name == parent).File);
                var path = Path.Combine(outDir, name + ".gguf");
                using var t = new TinyLlamaTrainer(s.Architecture with { Context = s.TeamContext }, stage.Batch, stage.SeqLen, s.ExpertThreads) { Optimizer = stage.Optimizer };
                t.LoadGguf(parentPath);
                var src = skill is null ? team.Generalist() : team.Expert(skill, data[skill].Train.Select(i => new Fact(i.Input, i.Output)).ToList());
                Log($"{name}: {steps} steps from {parent} ({stage.Batch}x{stage.SeqLen} tokens per step, lr {stage.LearningRate:G3})");
                var r = TrainingLoop.Run(t, new BatchSampler(src, stage.Batch, stage.SeqLen, seed), new BatchSampler(src, stage.Batch, stage.SeqLen, seed + 1),
                    new TrainingPlan { Steps = steps, EvalEvery = 0, ReportEvery = 100 }, p => Log(Format(name, p)), ct);
                t.SaveGguf(path, "consort-zoo-" + name, s.TensorType, Meta("team", skill));
                var mix = skill is null ? new Dictionary<string, double> { ["team_generalist"] = 1.0 } : new() { ["team_expert_" + skill] = 1.0 };
                var model = new ZooModel
                {
                    Name = name, File = name + ".gguf", Role = "team", Skill = skill, TensorType = s.TensorType.ToString(),
                    Bytes = new FileInfo(path).Length, Sha256 = Zoo.Sha256(path),
                    Training = Training(parent, null, seed, mix, true, steps, stage.Optimizer, r) with { Batch = stage.Batch, SeqLen = stage.SeqLen },
                };
                lock (models) models.Add(model);
                Log($"{name}: done in {r.Seconds:F0} s, loss {r.FinalLoss:F3}, eval {r.EvalLoss:F3}, {r.TokensPerSecond:F0} tok/s");
            }));
        }
        // Score the saved files (what ships), not the trainer's F32 weights; models unchanged since an earlier build keep their scores.
        var names = models.Select(m => m.Name).Concat(jobs.Where(j => Team.Any(x => x.Name == j.Name)).Select(j => j.Name)).ToList();
        var mixedTest = data["mixed"].Test;
        var contextChecks = TeamSkills.ContextChecks(mixedTest, members: 4, seed: s.DataSeed + 300);
        foreach (var name in names)
        {
            string[] after = jobs.Where(j => j.Name == name || j.Name == name + "/2").Select(j => j.Name).ToArray();
            if (after.Length == 0 && models.First(m => m.Name == name).Scores.Count > 0) continue;
            jobs.Add(new("score " + name, after, () =>
            {
                ZooModel m;
                lock (models) m = models.First(x => x.Name == name);
                using var check = new LlamaCppCheck(Path.Combine(outDir, m.File), 256, s.Threads);
                var scores = new Dictionary<string, double>();
                foreach (var skill in Skills.Append("mixed")) scores[skill] = Math.Round(check.Score(data[skill].Test, ct).Accuracy, 4);
                if (m.Role == "team")
                    foreach (var (key, items) in contextChecks.Concat(TeamSkills.SelfChecks(mixedTest, m.Skill)))
                        scores[key] = Math.Round(check.Score(items, ct, maxTokens: 28).Accuracy, 4);
                Log($"{m.Name}: " + string.Join("  ", scores.Select(kv => $"{kv.Key} {kv.Value:F3}")));
                lock (models) models[models.FindIndex(x => x.Name == name)] = m with { Scores = scores };
            }));
        }
        BuildJob.RunAll(jobs, s.ParallelJobs, ct);
        // Manifest order: base, experts, team models, whatever order the jobs finished in.
        var scored = models.OrderBy(m => m.Role switch { "base" => 0, "expert" => 1, _ => 2 })
            .ThenBy(m => m.Role == "team" ? Array.FindIndex(Team, x => x.Name == m.Name) : 0).ToList();

        // LoRA stage: adapters of the saved base, kept on --resume when their files match the manifest.
        var keptAdapters = previous?.Adapters.Where(a => File.Exists(Path.Combine(outDir, a.File)) && Zoo.Sha256(Path.Combine(outDir, a.File)) == a.Sha256).ToList() ?? [];
        var adapters = ZooAdapterStage.Train(s, outDir, "base", data, keptAdapters, Log, ct)
            .Select(a => a.Scores.Count > 0 ? a : ZooAdapterStage.Score(a, outDir, data, Skills.Append("mixed"), s.Threads, ct)).ToList();
        foreach (var a in adapters) Log($"{a.Name}: " + string.Join("  ", a.Scores.Select(kv => $"{kv.Key} {kv.Value:F3}")));

        var manifest = new ZooManifest
        {
            BuiltUtc = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ"), BuildSeconds = Math.Round(earlierSeconds + total.Elapsed.TotalSeconds, 1),
            Machine = $"base: {s.Threads} thread(s); experts: {s.ParallelExperts} in parallel x {s.ExpertThreads} thread(s); {Environment.ProcessorCount} cores",
            DataSeed = s.DataSeed, Architecture = s.Architecture, Parameters = s.Architecture.ParameterCount,
            Models = scored, Adapters = adapters, Datasets = datasets,
        };
        manifest.Save(Path.Combine(outDir, "manifest.json"));
        Log($"zoo built in {total.Elapsed.TotalSeconds:F0} s -> {outDir}");
        return manifest;
    }

    private static string Format(string name, TrainProgress p) =>
        $"{name}: step {p.Step}/{p.TotalSteps} loss {p.Loss:F3} lr {p.LearningRate:G3} {p.TokensPerSecond:F0} tok/s" + (p.EvalLoss is { } e ? $" eval {e:F3}" : "");

    private static Dictionary<string, GgufValue> Meta(string role, string? skill)
    {
        var d = new Dictionary<string, GgufValue> { ["consort.zoo.role"] = GgufValue.Of(role) };
        if (skill is not null) d["consort.zoo.skill"] = GgufValue.Of(skill);
        return d;
    }

    private static ZooTraining Training(string? parent, int? initSeed, int samplerSeed, Dictionary<string, double> mix, bool answerOnly, int steps, OptimizerSettings o, TrainResult r) => new()
    {
        Parent = parent, InitSeed = initSeed, SamplerSeed = samplerSeed, Mixture = mix, AnswerOnly = answerOnly, Steps = steps,
        Batch = 0, SeqLen = 0, LearningRate = o.LearningRate, WarmupSteps = o.WarmupSteps, MinLrRatio = o.MinLrRatio, WeightDecay = o.WeightDecay,
        FinalLoss = Math.Round(r.FinalLoss, 4), EvalLoss = Math.Round(r.EvalLoss, 4), Seconds = Math.Round(r.Seconds, 1), TokensPerSecond = Math.Round(r.TokensPerSecond),
    };

    private ZooModel Model(string name, string file, string role, string? skill, string path, ZooTraining training) => new()
    {
        Name = name, File = file, Role = role, Skill = skill, TensorType = settings.TensorType.ToString(),
        Bytes = new FileInfo(path).Length, Sha256 = Zoo.Sha256(path),
        Training = training with { Batch = settings.Batch, SeqLen = settings.SeqLen },
    };
}
