using System.Text.Json.Serialization;
using Consort.Training.Skills;

namespace Consort.Training;

/// <summary>Settings of the zoo's LoRA adapter stage (recorded per adapter in the manifest).</summary>
public sealed record ZooAdapterSettings
{
    /// <summary>Rank of every adapter.</summary>
    public int Rank { get; init; } = 8;
    /// <summary>lora_alpha (the update is scaled by Alpha / Rank).</summary>
    public float Alpha { get; init; } = 16;
    /// <summary>Optimizer steps per skill (a skill missing here, or with 0 steps, gets no adapter).</summary>
    public Dictionary<string, int> Steps { get; init; } = new()
    {
        // What the committed adapters were trained with (arith needs far more steps than the facts halves).
        [ArithmeticSkill.Name] = 800, [FactsWorld.HalfA] = 250, [FactsWorld.HalfB] = 250,
    };
    /// <summary>
    /// Fraction of training examples that replay what the base already learned (facts about the "other people" and, for the
    /// facts adapters, the arithmetic training split), so each adapter learns its skill without rewriting what it does
    /// elsewhere: adapters that leave other inputs alone can be added together.
    /// </summary>
    public double Replay { get; init; } = 0.4;
    /// <summary>Per-skill replay fractions overriding <see cref="Replay"/> (the committed arith adapter used 0.2: with 0.4 and
    /// 500 steps it reached only 0.09 on its test split).</summary>
    public Dictionary<string, double> ReplayBySkill { get; init; } = new() { [ArithmeticSkill.Name] = 0.2 };
    /// <summary>Windows per step.</summary>
    public int Batch { get; init; } = 16;
    /// <summary>Tokens per window.</summary>
    public int SeqLen { get; init; } = 64;
    /// <summary>Optimizer (LoRA takes a larger learning rate than full fine-tuning).</summary>
    public OptimizerSettings Optimizer { get; init; } = new() { LearningRate = 5e-3f, WarmupSteps = 20, MinLrRatio = 0.1f };
    /// <summary>ggml threads per adapter job.</summary>
    public int Threads { get; init; } = 1;
    /// <summary>Adapter jobs at the same time.</summary>
    public int Parallel { get; init; } = 3;
}

/// <summary>One LoRA adapter of the zoo: <c>zoo:NAME</c> resolves to <see cref="Base"/> with this adapter applied.</summary>
public sealed record ZooAdapter
{
    /// <summary>Name used in <c>zoo:NAME</c> (skill + "-lora").</summary>
    [JsonPropertyName("name")] public required string Name { get; init; }
    /// <summary>Adapter file inside the zoo folder.</summary>
    [JsonPropertyName("file")] public required string File { get; init; }
    /// <summary>The zoo model the adapter was trained for.</summary>
    [JsonPropertyName("base")] public required string Base { get; init; }
    /// <summary>The skill it teaches.</summary>
    [JsonPropertyName("skill")] public required string Skill { get; init; }
    /// <summary>LoRA rank.</summary>
    [JsonPropertyName("rank")] public int Rank { get; init; }
    /// <summary>lora_alpha.</summary>
    [JsonPropertyName("alpha")] public float Alpha { get; init; }
    /// <summary>Adapted block matrices.</summary>
    [JsonPropertyName("targets")] public List<string> Targets { get; init; } = [];
    /// <summary>Init seed of A.</summary>
    [JsonPropertyName("lora_seed")] public int LoraSeed { get; init; }
    /// <summary>Trainable parameters.</summary>
    [JsonPropertyName("trainable_parameters")] public long TrainableParameters { get; init; }
    /// <summary>File size in bytes.</summary>
    [JsonPropertyName("bytes")] public long Bytes { get; init; }
    /// <summary>SHA-256 of the file, lower-case hex.</summary>
    [JsonPropertyName("sha256")] public required string Sha256 { get; init; }
    /// <summary>How it was trained.</summary>
    [JsonPropertyName("training")] public required ZooTraining Training { get; init; }
    /// <summary>Greedy exact-match accuracy of base + adapter (scale 1) through llama.cpp on each test split.</summary>
    [JsonPropertyName("scores")] public Dictionary<string, double> Scores { get; init; } = new();
}

/// <summary>
/// The zoo's LoRA stage, run after the full models exist: one adapter per skill trained from the saved base file (its
/// weights frozen), so the three adapters are low-rank deltas of one shared base, the setting weight-space methods
/// (LoraHub, soups, swarms) are made for. Deterministic for the settings: single-thread ggml jobs, fixed seeds.
/// </summary>
public static class ZooAdapterStage
{
    /// <summary>File name of a skill's adapter.</summary>
    public static string FileName(string skill) => skill + "-lora.gguf";

    /// <summary>Reference name of a skill's adapter.</summary>
    public static string AdapterName(string skill) => skill + "-lora";

    /// <summary>
    /// Trains the adapters missing from <paramref name="existing"/> (in skill order) and returns every adapter, unscored.
    /// </summary>
    public static List<ZooAdapter> Train(ZooBuildSettings build, string outDir, string baseName, IReadOnlyDictionary<string, SkillData> data,
        IReadOnlyList<ZooAdapter> existing, Action<string> log, CancellationToken ct)
    {
        var s = build.Adapters;
        var lora = new LoraSettings { Rank = s.Rank, Alpha = s.Alpha };
        lora.Validate();
        var basePath = Path.Combine(outDir, baseName + ".gguf");
        var skills = ZooBuilder.Skills.Where(k => s.Steps.TryGetValue(k, out var n) && n > 0).ToList();
        var result = new ZooAdapter?[skills.Count];
        for (int i = 0; i < skills.Count; i++) result[i] = existing.FirstOrDefault(a => a.Skill == skills[i]);
        var todo = Enumerable.Range(0, skills.Count).Where(i => result[i] is null).ToList();
        // Each job on a thread of its own (the calling thread only waits), at most s.Parallel at once.
        using var slots = new SemaphoreSlim(Math.Max(1, s.Parallel));
        var tasks = todo.Select(i => Task.Factory.StartNew(() =>
        {
            slots.Wait(ct);
            try { TrainOne(i); } finally { slots.Release(); }
        }, ct, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();
        try { Task.WaitAll(tasks, ct); }
        catch (AggregateException e) when (e.InnerExceptions.Count == 1) { System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw(); }
        return result.Select(a => a!).ToList();

        void TrainOne(int i)
        {
            var skill = skills[i];
            int k = Array.IndexOf(ZooBuilder.Skills, skill);
            int samplerSeed = build.DataSeed + 10 * (k + 1) + 7, loraSeed = build.DataSeed + 500 + k;
            var settings = lora with { Seed = loraSeed };
            using var t = new TinyLlamaTrainer(build.Architecture, s.Batch, s.SeqLen, s.Threads, settings) { Optimizer = s.Optimizer };
            t.LoadGguf(basePath);
            var train = data[skill].Train;
            Func<Random, TrainingExample> Pairs(IReadOnlyList<SkillItem> items) => rng => { var it = items[rng.Next(items.Count)]; return TrainingExample.FromPair(it.Input, " " + it.Output, true); };
            double replay = s.ReplayBySkill.TryGetValue(skill, out var own) ? own : s.Replay;
            var mixture = new Dictionary<string, double> { [skill + "_train"] = 1 - replay };
            var src = Pairs(train);
            if (replay > 0)
            {
                // Replay the base's own material: the other people's facts, and the arithmetic split for the facts adapters.
                var others = new FactsWorld(build.DataSeed).Others();
                var parts = new List<(double, Func<Random, TrainingExample>)> { (1 - replay, Pairs(train)) };
                if (skill == ArithmeticSkill.Name) { parts.Add((replay, Pairs(others))); mixture["facts_other_people"] = replay; }
                else
                {
                    parts.Add((replay / 2, Pairs(others))); parts.Add((replay / 2, Pairs(data[ArithmeticSkill.Name].Train)));
                    mixture["facts_other_people"] = replay / 2; mixture["arith_train"] = replay / 2;
                }
                src = BatchSampler.Mix([.. parts]);
            }
            var test = data[skill].Test;
            Func<Random, TrainingExample> held = rng => { var it = test[rng.Next(test.Count)]; return TrainingExample.FromPair(it.Input, " " + it.Output, true); };
            int steps = s.Steps[skill];
            log($"{AdapterName(skill)}: {steps} steps, rank {s.Rank}, {t.TrainableParameterCount:N0} trainable parameters, from {baseName}");
            var r = TrainingLoop.Run(t, new BatchSampler(src, s.Batch, s.SeqLen, samplerSeed), new BatchSampler(held, s.Batch, s.SeqLen, samplerSeed + 1),
                new TrainingPlan { Steps = steps, EvalEvery = 0, ReportEvery = 50 },
                p => log($"{AdapterName(skill)}: step {p.Step}/{p.TotalSteps} loss {p.Loss:F3} {p.TokensPerSecond:F0} tok/s"), ct);
            var file = FileName(skill);
            var path = Path.Combine(outDir, file);
            t.SaveLoraAdapter(path);
            result[i] = new ZooAdapter
            {
                Name = AdapterName(skill), File = file, Base = baseName, Skill = skill, Rank = s.Rank, Alpha = s.Alpha,
                Targets = [.. settings.Targets], LoraSeed = loraSeed, TrainableParameters = t.TrainableParameterCount,
                Bytes = new FileInfo(path).Length, Sha256 = Zoo.Sha256(path),
                Training = new ZooTraining
                {
                    Parent = baseName, SamplerSeed = samplerSeed, Mixture = mixture, AnswerOnly = true, Steps = steps,
                    Batch = s.Batch, SeqLen = s.SeqLen, LearningRate = s.Optimizer.LearningRate, WarmupSteps = s.Optimizer.WarmupSteps,
                    MinLrRatio = s.Optimizer.MinLrRatio, WeightDecay = s.Optimizer.WeightDecay,
                    FinalLoss = Math.Round(r.FinalLoss, 4), EvalLoss = Math.Round(r.EvalLoss, 4), Seconds = Math.Round(r.Seconds, 1), TokensPerSecond = Math.Round(r.TokensPerSecond),
                },
            };
            log($"{AdapterName(skill)}: done in {r.Seconds:F0} s, loss {r.FinalLoss:F3}, eval {r.EvalLoss:F3}, {r.TokensPerSecond:F0} tok/s");
        }
    }

    /// <summary>Scores base + adapter (scale 1) through llama.cpp on every test split.</summary>
    public static ZooAdapter Score(ZooAdapter a, string outDir, IReadOnlyDictionary<string, SkillData> data, IEnumerable<string> splits, int threads, CancellationToken ct)
    {
        using var check = new LlamaCppCheck(Path.Combine(outDir, a.Base + ".gguf"), 256, threads, Path.Combine(outDir, a.File));
        var scores = new Dictionary<string, double>();
        foreach (var name in splits) scores[name] = Math.Round(check.Score(data[name].Test, ct).Accuracy, 4);
        return a with { Scores = scores };
    }
}
