using System.CommandLine;
using Consort.Training;

namespace Consort.Cli.Commands;

/// <summary><c>consort zoo build|list</c>: the built-in model zoo.</summary>
public sealed class ZooCommand : ICliCommand
{
    /// <inheritdoc />
    public Command Build()
    {
        var zoo = new Command("zoo", "The built-in model zoo: tiny LLaMA experts trained by Consort itself.");

        var list = new Command("list", "List the zoo's models and datasets with their scores.");
        list.SetAction((ParseResult _, CancellationToken _) =>
        {
            var dir = Zoo.Directory();
            var m = Zoo.Manifest();
            Console.WriteLine($"zoo: {dir}  (built {m.BuiltUtc} in {m.BuildSeconds:F0} s; {m.Parameters:N0} parameters per model)");
            var skills = m.Models.SelectMany(x => x.Scores.Keys).Distinct().ToList();
            Console.WriteLine($"{"model",-12} {"role",-7} {"file",-14} {"MB",5}  " + string.Join(" ", skills.Select(s => $"{s,8}")));
            foreach (var x in m.Models)
            {
                var path = Path.Combine(dir, x.File);
                var state = !File.Exists(path) ? "  MISSING" : "";
                Console.WriteLine($"{"zoo:" + x.Name,-12} {x.Role,-7} {x.File,-14} {x.Bytes / 1e6,5:F2}  "
                                  + string.Join(" ", skills.Select(s => x.Scores.TryGetValue(s, out var v) ? $"{v,8:F3}" : $"{"-",8}")) + state);
            }
            foreach (var a in m.Adapters)
            {
                var state = !File.Exists(Path.Combine(dir, a.File)) ? "  MISSING" : "";
                Console.WriteLine($"{"zoo:" + a.Name,-12} {"lora",-7} {a.File,-14} {a.Bytes / 1e6,5:F2}  "
                                  + string.Join(" ", skills.Select(s => a.Scores.TryGetValue(s, out var v) ? $"{v,8:F3}" : $"{"-",8}")) + state + $"  (rank {a.Rank} on zoo:{a.Base})");
            }
            foreach (var d in m.Datasets) Console.WriteLine($"dataset zoo:{d.Name,-8} {d.File} ({d.Dev} dev / {d.Test} test)");
            return Task.FromResult(0);
        });
        zoo.Subcommands.Add(list);

        var build = new Command("build", "Train the zoo from scratch (base + one expert per skill), score it and write GGUF files + manifest.");
        var outOpt = new Option<string?>("--out") { Description = "Output folder (default: the repository's zoo/ folder)" };
        var threads = new Option<int>("--threads") { Description = "ggml threads of the base job and of each expert job (experts run in parallel)", DefaultValueFactory = _ => 1 };
        var baseSteps = new Option<int>("--base-steps") { Description = "Base model steps", DefaultValueFactory = _ => new ZooBuildSettings().BaseSteps };
        var expertSteps = new Option<int>("--expert-steps") { Description = "Steps per expert", DefaultValueFactory = _ => new ZooBuildSettings().ExpertSteps };
        var seed = new Option<int>("--seed") { Description = "Data seed", DefaultValueFactory = _ => new ZooBuildSettings().DataSeed };
        var extra = new Option<string?>("--extra-steps") { Description = "Second-stage steps per expert, e.g. arith=600 (comma-separated)" };
        var team = new Option<string?>("--team-steps") { Description = "Steps per team model, e.g. team_reader=600,team_arith=0 (0 skips one; comma-separated)" };
        var resume = new Option<bool>("--resume") { Description = "Keep a finished build's models in --out and run only what is missing (second stages, team models) and their scoring" };
        var notes = new Option<string?>("--notes") { Description = "Free-text note stored in the manifest (e.g. machine load)" };
        var adapterSteps = new Option<string?>("--adapter-steps") { Description = "LoRA adapter steps per skill, e.g. arith=800,facts_a=250 (0: no adapter)" };
        var adapterRank = new Option<int>("--adapter-rank") { Description = "LoRA adapter rank (alpha = 2 x rank)", DefaultValueFactory = _ => new ZooAdapterSettings().Rank };
        var adapterLr = new Option<float>("--adapter-lr") { Description = "LoRA adapter peak learning rate", DefaultValueFactory = _ => new ZooAdapterSettings().Optimizer.LearningRate };
        var adapterReplay = new Option<double>("--adapter-replay") { Description = "Fraction of LoRA training examples replaying the base's material, for every skill (default: 0.4, arith 0.2)", DefaultValueFactory = _ => new ZooAdapterSettings().Replay };
        foreach (var o in new Option[] { outOpt, threads, baseSteps, expertSteps, seed, extra, team, resume, notes, adapterSteps, adapterRank, adapterLr, adapterReplay }) build.Options.Add(o);
        build.SetAction((ParseResult pr, CancellationToken ct) =>
        {
            var outDir = pr.GetValue(outOpt) ?? DefaultZooDir();
            int t = pr.GetValue(threads), bs = pr.GetValue(baseSteps), es = pr.GetValue(expertSteps);
            if (t < 1 || bs < 1 || es < 1) throw new ConsortException("--threads, --base-steps and --expert-steps must be positive");
            var settings = new ZooBuildSettings { Threads = t, ExpertThreads = t, BaseSteps = bs, ExpertSteps = es, DataSeed = pr.GetValue(seed) };
            if (pr.GetValue(extra) is { } ex) settings = settings with { ExtraExpertSteps = ParseSteps(ex, "--extra-steps", ZooBuilder.Skills, "SKILL") };
            if (pr.GetValue(team) is { } tm)
            {
                var stages = new Dictionary<string, TeamStage>(settings.Team);
                foreach (var (k, v) in ParseSteps(tm, "--team-steps", ZooBuilder.Team.Select(x => x.Name).ToArray(), "MODEL")) stages[k] = stages[k] with { Steps = v };
                settings = settings with { Team = stages };
            }
            int rank = pr.GetValue(adapterRank);
            float alr = pr.GetValue(adapterLr);
            if (rank < 1 || !(alr > 0)) throw new ConsortException("--adapter-rank and --adapter-lr must be positive");
            double replay = pr.GetValue(adapterReplay);
            if (replay is < 0 or >= 1) throw new ConsortException($"--adapter-replay {replay}: expected a fraction in [0, 1)");
            var ad = settings.Adapters with { Rank = rank, Alpha = 2f * rank, Optimizer = settings.Adapters.Optimizer with { LearningRate = alr }, Threads = t };
            // An explicit --adapter-replay applies to every skill (the default keeps the per-skill fractions).
            if (pr.GetResult(adapterReplay) is { Implicit: false }) ad = ad with { Replay = replay, ReplayBySkill = new() };
            if (pr.GetValue(adapterSteps) is { } ast) ad = ad with { Steps = ParseSteps(ast, "--adapter-steps", ZooBuilder.Skills, "SKILL") };
            settings = settings with { Adapters = ad };
            var m = new ZooBuilder(settings, s => Console.WriteLine($"[{DateTime.UtcNow:HH:mm:ss}] {s}")).Build(outDir, pr.GetValue(resume), ct);
            if (pr.GetValue(notes) is { } n)
                (m with { Notes = n }).Save(Path.Combine(outDir, "manifest.json"));
            return Task.FromResult(0);
        });
        zoo.Subcommands.Add(build);
        return zoo;
    }

    private static Dictionary<string, int> ParseSteps(string text, string option, string[] valid, string what)
    {
        var d = new Dictionary<string, int>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var kv = part.Split('=');
            if (kv.Length != 2 || !valid.Contains(kv[0]) || !int.TryParse(kv[1], out var n) || n < 0)
                throw new ConsortException($"{option} '{part}': expected {what}=STEPS with {what} one of {string.Join(", ", valid)}");
            d[kv[0]] = n;
        }
        return d;
    }

    private static string DefaultZooDir()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Consort.slnx"))) return Path.Combine(dir.FullName, "zoo");
        throw new ConsortException("repository root (Consort.slnx) not found; pass --out");
    }
}
