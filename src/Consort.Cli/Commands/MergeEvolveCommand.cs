using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Consort.Evaluation;
using Consort.Formats;
using Consort.LlamaCpp;
using Consort.Optimization;
using Consort.Weights.Config;
using Consort.Weights.Engine;
using Consort.Weights.Evolve;

namespace Consort.Cli.Commands;

/// <summary>
/// <c>consort merge-evolve CONFIG.yml --storage-path DIR</c>: mergekit-evolve. CMA-ES searches a merge's parameters
/// (mergekit's genome) with a run config's task as fitness: each candidate is merged into tmpfs, loaded through
/// llama.cpp, scored on the task's dev split and deleted. The storage folder keeps the search state (after every
/// Ask and Tell), one line per evaluation and the best recipe as mergekit YAML, so a killed search resumes where it
/// was: the same candidates, evaluated ones not again.
/// </summary>
public sealed class MergeEvolveCommand : ICliCommand
{
    /// <inheritdoc />
    public Command Build()
    {
        var config = new Argument<string>("config") { Description = "mergekit-evolve YAML (genome, tasks or run_config, limit)" };
        var storage = new Option<string>("--storage-path") { Description = "folder for the search state, the evaluations and best_config.yaml (rerun with it to resume)", Required = true };
        var fevals = new Option<int>("--max-fevals") { Description = "fitness evaluations in all (the last generation is finished)", DefaultValueFactory = _ => 100 };
        var sigma = new Option<double>("--sigma0") { Description = "initial step size of CMA-ES", DefaultValueFactory = _ => 1.0 / 6 };
        var seed = new Option<int>("--random-seed") { Description = "seed of the search (and of random merge methods)", DefaultValueFactory = _ => 0 };
        var population = new Option<int?>("--population") { Description = "candidates per generation (default 4 + 3 ln n)" };
        var concurrency = new Option<int>("--concurrency") { Description = "items evaluated at once per candidate", DefaultValueFactory = _ => 4 };
        var cmd = new Command("merge-evolve", "Evolve merge parameters with CMA-ES against a task (mergekit-evolve); resumable.");
        cmd.Arguments.Add(config);
        foreach (var o in new Option[] { storage, fevals, sigma, seed, population, concurrency }) cmd.Options.Add(o);
        cmd.SetAction(async (ParseResult pr, CancellationToken ct) =>
        {
            if (pr.GetValue(fevals) < 1) throw new ConfigException("--max-fevals must be at least 1");
            if (!(pr.GetValue(sigma) > 0)) throw new ConfigException("--sigma0 must be positive");
            if (pr.GetValue(concurrency) < 1) throw new ConfigException("--concurrency must be at least 1");
            if (pr.GetValue(population) is int p && p < 2) throw new ConfigException("--population must be at least 2");
            var search = new EvolveSearch(EvolveConfig.Load(pr.GetValue(config)!, Resolve), Path.GetFullPath(pr.GetValue(storage)!), pr.GetValue(seed),
                pr.GetValue(sigma), pr.GetValue(population), pr.GetValue(concurrency));
            await search.RunAsync(pr.GetValue(fevals), ct);
            return 0;
        });
        return cmd;
    }

    private static string Resolve(string reference) => Consort.Config.ModelReferenceResolver.ResolveReference(reference);
}

/// <summary>One merge-evolve search over a storage folder.</summary>
internal sealed class EvolveSearch
{
    private readonly EvolveConfig _config;
    private readonly MergeGenome _genome;
    private readonly string _storage, _scratch;
    private readonly int _seed, _concurrency;
    private readonly double _sigma;
    private readonly int? _population;
    private readonly List<EvalTask> _tasks;
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = false };

    public EvolveSearch(EvolveConfig config, string storage, int seed, double sigma, int? population, int concurrency)
    {
        _config = config; _storage = storage; _seed = seed; _sigma = sigma; _population = population; _concurrency = concurrency;
        // The merged candidates live in memory (tmpfs) when the machine has one, never one checkpoint per candidate on disk.
        var scratchRoot = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.Combine(storage, "scratch");
        _scratch = Path.Combine(scratchRoot, $"consort-evolve-{Environment.ProcessId}-{Guid.NewGuid():N}");
        SweepScratch(scratchRoot);
        int layers;
        using (var first = TensorSources.Open(config.Genome.ModelPaths[0])) layers = TensorNames.LayerCount(first.Tensors.Select(t => t.Name));
        if (config.Genome.LayerGranularity > 0 && layers % config.Genome.LayerGranularity != 0)
            throw new ConfigException($"genome.layer_granularity {config.Genome.LayerGranularity} must divide the models' {layers} layers");
        _genome = config.Genome with { Layers = layers };
        // Everything checked before the first merge: the genome's merges (at the start point), the tasks.
        foreach (var w in MergeEngine.Validate(_genome.ToMergeConfig(_genome.Initial(false, seed), seed)))
            if (!w.Contains("int8_mask")) Console.Error.WriteLine($"warning: {w}");
        var folders = DatasetSearch.Folders(config.Directory);
        _tasks = config.Tasks.Select(t => EvalTask.Create(DatasetSearch.Normalize(t.Task.DeepClone()), folders)).ToList();
    }

    // A killed search cannot delete its candidate, and tmpfs is memory: scratch folders of searches whose process is
    // gone are removed when the next one starts.
    private static void SweepScratch(string root)
    {
        if (!Directory.Exists(root)) return;
        foreach (var dir in Directory.GetDirectories(root, "consort-evolve-*"))
        {
            var parts = Path.GetFileName(dir).Split('-');
            if (parts.Length < 3 || !int.TryParse(parts[2], out var pid) || pid == Environment.ProcessId) continue;
            try { using var owner = System.Diagnostics.Process.GetProcessById(pid); continue; }
            catch (ArgumentException) { } // no such process
            try { Directory.Delete(dir, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private string StatePath => Path.Combine(_storage, "state.json");
    private string LogPath => Path.Combine(_storage, "evaluations.jsonl");
    private string BestPath => Path.Combine(_storage, "best_config.yaml");

    public async Task RunAsync(int maxEvaluations, CancellationToken ct)
    {
        Directory.CreateDirectory(_storage);
        var (es, best) = Open();
        var logged = ReadLog();
        Console.WriteLine($"merge-evolve: {_genome.MergeMethod} over {_genome.Models.Count} models, {_genome.Dimension} parameters, population {es.PopulationSize}; " +
                          (es.Generation > 0 || es.HasPending ? $"resuming at generation {es.Generation} ({logged.Count} evaluations logged)" : "starting"));
        Directory.CreateDirectory(_scratch);
        try
        {
            while (es.Evaluations < maxEvaluations && es.StopReason is null)
            {
                ct.ThrowIfCancellationRequested();
                var xs = es.Ask();
                Save(es, best); // the pending candidates are part of the state: a resumed search re-asks exactly these
                var fitness = new double[xs.Count];
                for (int i = 0; i < xs.Count; i++)
                {
                    if (logged.TryGetValue((es.Generation, i), out var f)) { fitness[i] = f; continue; }
                    var (value, scores, error, seconds) = await EvaluateAsync(xs[i], es.Generation, i, ct);
                    fitness[i] = value;
                    Append(new JsonObject
                    {
                        ["generation"] = es.Generation, ["index"] = i, ["x"] = new JsonArray(xs[i].Select(v => (JsonNode)v).ToArray()),
                        ["fitness"] = double.IsFinite(value) ? value : null, ["scores"] = new JsonArray(scores.Select(s => (JsonNode)s).ToArray()),
                        ["seconds"] = Math.Round(seconds, 3), ["error"] = error,
                    });
                    logged[(es.Generation, i)] = value;
                }
                // CMA-ES minimizes; the fitness is maximized.
                es.Tell(xs, fitness.Select(f => double.IsFinite(f) ? -f : double.PositiveInfinity).ToArray());
                int bestIndex = Enumerable.Range(0, xs.Count).MaxBy(i => double.IsFinite(fitness[i]) ? fitness[i] : double.NegativeInfinity);
                if (double.IsFinite(fitness[bestIndex]) && (best is null || fitness[bestIndex] > best.Value.Fitness))
                {
                    best = (xs[bestIndex], fitness[bestIndex]);
                    WriteAtomically(BestPath, $"# merge-evolve best: fitness {best.Value.Fitness:F4} (generation {es.Generation - 1}, candidate {bestIndex})\n" + _genome.ToYaml(best.Value.X));
                }
                Save(es, best);
                var finite = fitness.Where(double.IsFinite).ToList();
                Console.WriteLine($"generation {es.Generation - 1}: fitness {(finite.Count == 0 ? "-" : $"{finite.Min():F4} to {finite.Max():F4}")}, best so far {(best is null ? "-" : best.Value.Fitness.ToString("F4"))}, sigma {es.Sigma:F4}, {es.Evaluations} evaluations");
            }
        }
        finally
        {
            try { Directory.Delete(_scratch, true); } catch (IOException) { }
        }
        Console.WriteLine(es.StopReason is { } why ? $"stopped: {why}" : $"done: {es.Evaluations} evaluations");
        if (best is not null) Console.WriteLine($"best fitness {best.Value.Fitness:F4}; recipe in {BestPath}");
        else throw new ConsortException("no candidate could be merged and scored; see the errors in " + LogPath);
    }

    // Merge into tmpfs, load through llama.cpp, score every task, delete.
    private async Task<(double Fitness, double[] Scores, string? Error, double Seconds)> EvaluateAsync(double[] x, int generation, int index, CancellationToken ct)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var output = Path.Combine(_scratch, $"g{generation}-c{index}.gguf");
        var scores = new List<double>();
        try
        {
            MergeEngine.Run(_genome.ToMergeConfig(x, _seed), output, ct: ct);
            using var model = LlamaModelFactory.Load(new LlamaModelOptions { Path = output, Name = $"g{generation}c{index}", Seed = _seed, MaxSequences = _concurrency });
            double fitness = 0;
            for (int t = 0; t < _tasks.Count; t++)
            {
                var dir = Path.Combine(_scratch, $"eval-g{generation}-c{index}-t{t}");
                var summary = await EvalRunner.RunAsync(model, _tasks[t], new EvalRunOptions
                {
                    OutputDirectory = dir, Split = _config.Split, Limit = _config.Limit, Concurrency = _concurrency, Method = "merge-evolve",
                }, null, ct);
                Directory.Delete(dir, true);
                var metric = _config.Tasks[t].Metric;
                double score = metric == "score" ? summary.Score : summary.Metrics.TryGetValue(metric, out var m) ? m
                    : throw new ConsortException($"task {_tasks[t].Name} reported no metric '{metric}' (it has: score, {string.Join(", ", summary.Metrics.Keys)})");
                scores.Add(score);
                fitness += _config.Tasks[t].Weight * score;
            }
            return (fitness, [.. scores], null, sw.Elapsed.TotalSeconds);
        }
        catch (ConsortException e)
        {
            // A candidate that cannot be merged or run (e.g. DELLA densities outside epsilon's range) is the worst one.
            return (double.NegativeInfinity, [.. scores], e.Message, sw.Elapsed.TotalSeconds);
        }
        finally
        {
            try { File.Delete(output); } catch (IOException) { }
        }
    }

    private (CmaEs, (double[] X, double Fitness)?) Open()
    {
        if (!File.Exists(StatePath))
        {
            var x0 = _genome.Initial(_config.RandomInit, _seed);
            return (new CmaEs(x0, _sigma, new CmaEsOptions { Seed = (ulong)_seed, PopulationSize = _population }), null);
        }
        JsonObject state;
        try { state = JsonNode.Parse(File.ReadAllText(StatePath))!.AsObject(); }
        catch (JsonException e) { throw new ConsortException($"{StatePath}: not a merge-evolve state ({e.Message}); use another --storage-path"); }
        if (state["config_hash"]?.GetValue<string>() != _config.Hash)
            throw new ConsortException($"{_storage} holds a search of another config (its state.json does not match {Path.GetFileName(_config.Directory)}); use another --storage-path");
        var es = CmaEs.FromState(state["cma"].Deserialize<CmaEsState>()!);
        (double[], double)? best = state["best"] is JsonObject b ? (b["x"].Deserialize<double[]>()!, b["fitness"]!.GetValue<double>()) : null;
        return (es, best);
    }

    private void Save(CmaEs es, (double[] X, double Fitness)? best)
    {
        var state = new JsonObject
        {
            ["config_hash"] = _config.Hash,
            ["cma"] = JsonSerializer.SerializeToNode(es.ExportState()),
            ["best"] = best is null ? null : new JsonObject { ["x"] = JsonSerializer.SerializeToNode(best.Value.X), ["fitness"] = best.Value.Fitness },
        };
        WriteAtomically(StatePath, state.ToJsonString(Json));
    }

    private static void WriteAtomically(string path, string text)
    {
        using var f = new AtomicFile(path);
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        f.Stream.Write(bytes);
        f.Commit();
    }

    private void Append(JsonObject line)
    {
        using var s = new FileStream(LogPath, FileMode.Append, FileAccess.Write, FileShare.Read);
        var bytes = System.Text.Encoding.UTF8.GetBytes(line.ToJsonString(Json) + "\n");
        s.Write(bytes);
        s.Flush(flushToDisk: true);
    }

    // Evaluations already made, by (generation, index); a torn last line (killed mid-write) is ignored.
    private Dictionary<(int, int), double> ReadLog()
    {
        var done = new Dictionary<(int, int), double>();
        if (!File.Exists(LogPath)) return done;
        foreach (var line in File.ReadAllLines(LogPath))
        {
            if (line.Length == 0) continue;
            try
            {
                var o = JsonNode.Parse(line)!.AsObject();
                double f = o["fitness"] is JsonValue v ? v.GetValue<double>() : double.NegativeInfinity;
                done[(o["generation"]!.GetValue<int>(), o["index"]!.GetValue<int>())] = f;
            }
            catch (JsonException) { }
        }
        return done;
    }
}
