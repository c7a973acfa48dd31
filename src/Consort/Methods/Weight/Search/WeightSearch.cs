using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Consort.Config;
using Consort.Weights.Engine;

namespace Consort.Methods.Weight.Search;

/// <summary>Settings every dev-scored weight search shares (greedy soup, expo, dare_ties, ...).</summary>
public abstract class WeightSearchOptions : MethodOptions
{
    /// <summary>Dev examples each candidate is scored on.</summary>
    [Option("Dev examples each candidate (member or merge) is scored on: a seeded sample, stratified by group; all when fewer.",
        Min = 1, Max = 1_000_000, Aliases = ["dev_samples"])]
    public virtual int DevSize { get; set; } = 64;

    /// <summary>Folder of the search's files.</summary>
    [Option("Folder for the search's evaluation log (a killed run resumes from it), its best recipe best.yml (mergekit YAML) and the merged best.gguf.",
        DefaultText = "cache folder keyed by the search")]
    public string? SearchDir { get; set; }
}

/// <summary>
/// The common machinery of weight searches: checks that members can be merged (before work), scores members and merge
/// recipes on a dev sample with the task's own generation options (each candidate merged by the engine into a
/// temporary GGUF, loaded through the host's loader, scored, then deleted), memoizes every score in an
/// <see cref="EvaluationLog"/> (so a killed search resumes), and merges, saves and loads the best recipe.
/// </summary>
public sealed class WeightSearch
{
    private readonly MethodContext _context;
    private readonly WeightSearchOptions _options;
    private readonly IReadOnlyList<FitExample> _examples;
    private readonly IModelLoader _loader;
    private readonly string _method;
    private int _candidates;

    private WeightSearch(MethodContext context, WeightSearchOptions options, string method, IModelLoader loader, IReadOnlyList<FitExample> examples,
        IReadOnlyList<string> paths, string dir, EvaluationLog log)
    {
        _context = context; _options = options; _method = method; _loader = loader; _examples = examples; Paths = paths; Directory = dir; Log = log;
    }

    /// <summary>The members' weights files, in config order.</summary>
    public IReadOnlyList<string> Paths { get; }
    /// <summary>The search's folder (log, recipe, merged model).</summary>
    public string Directory { get; }
    /// <summary>Every evaluation of this search (also those read back from a killed run).</summary>
    public EvaluationLog Log { get; }
    /// <summary>The dev sample scored.</summary>
    public IReadOnlyList<FitExample> Examples => _examples;

    /// <summary>
    /// Validation before work: every member is a local GGUF with a weights file, and all share one architecture,
    /// parameter count and vocabulary (what merging needs); the run has dev data.
    /// </summary>
    public static void CheckMembers(MethodPlan plan, bool needsDev = true)
    {
        foreach (var m in plan.Members)
        {
            if (m.WeightsPath is null)
                throw plan.Error($"model '{m.Name}' has no weights file (only local GGUF models can be merged)");
            // Merging the weights files would silently leave the adapters out.
            if (m.Adapters.Count > 0)
                throw plan.Error($"model '{m.Name}' is a LoRA adapter of {Path.GetFileName(m.WeightsPath)}; this method merges whole models " +
                                 "(give the merged file, or use lorahub / model_swarms, which combine adapters)");
        }
        var first = plan.Members[0];
        foreach (var m in plan.Members.Skip(1))
            if (!string.Equals(m.Architecture, first.Architecture, StringComparison.OrdinalIgnoreCase) || m.Parameters != first.Parameters)
                throw plan.Error($"members must share one architecture to be merged: '{first.Name}' is {Shape(first)}, '{m.Name}' is {Shape(m)}");
        SharedVocabulary.Require(plan.Members, plan.Where);
        if (needsDev && !plan.HasDev) throw plan.Error("needs a task with a dev split to score candidates on");
    }

    /// <summary>
    /// Validation before work for searches over LoRA adapters: every member is a local GGUF base with at least one adapter,
    /// and all members adapt one base file (their deltas are combined over it); the run has dev data.
    /// </summary>
    public static void CheckLoraMembers(MethodPlan plan, string why, bool needsDev = true)
    {
        var first = plan.Members[0];
        foreach (var m in plan.Members)
        {
            if (m.WeightsPath is null)
                throw plan.Error($"model '{m.Name}' has no weights file (only local GGUF models with LoRA adapters can be combined)");
            if (m.Adapters.Count == 0)
                throw plan.Error($"model '{m.Name}' is not a LoRA adapter (its entry has no 'lora'): {why}");
            if (!string.Equals(Path.GetFullPath(m.WeightsPath), Path.GetFullPath(first.WeightsPath!), StringComparison.Ordinal))
                throw plan.Error($"members must be LoRA adapters of one base model: '{first.Name}' adapts {first.WeightsPath}, '{m.Name}' adapts {m.WeightsPath}");
        }
        if (needsDev && !plan.HasDev) throw plan.Error("needs a task with a dev split to score candidates on");
    }

    private static string Shape(ModelDescriptor d) =>
        $"{d.Architecture ?? "unknown architecture"} with {(d.Parameters is { } p ? p.ToString("N0", CultureInfo.InvariantCulture) : "unknown")} parameters";

    /// <summary>What a search's result offers: the merged model's text, logits and weights.</summary>
    public static ModelDescriptor Describe(MethodPlan plan) => new()
    {
        Name = plan.Name,
        Access = ModelAccess.Text | ModelAccess.FullLogits | ModelAccess.Weights,
        Vocabulary = plan.Members[0].Vocabulary,
        ContextSize = plan.MinContextSize,
        Architecture = plan.Members[0].Architecture,
        Parameters = plan.Members[0].Parameters,
    };

    /// <summary>Starts (or resumes) a search: samples dev, opens the log in the search folder.</summary>
    /// <param name="context">The method's context.</param>
    /// <param name="options">The method's options (part of what the search is).</param>
    /// <param name="method">Method name.</param>
    /// <param name="needsDev">False for a merge that scores nothing (it still gets a folder, a recipe and a final merge).</param>
    public static WeightSearch Start(MethodContext context, WeightSearchOptions options, string method, bool needsDev = true)
    {
        var loader = context.Loader ?? throw new ConsortException($"method '{method}' needs a model loader to run merged candidates (none was given by the host)");
        if (needsDev && context.Dev is not { Examples.Count: > 0 }) throw new ConfigException($"method '{method}' needs a task with a dev split to score candidates on");
        var paths = context.Models.Select(m => Path.GetFullPath(m.Descriptor.WeightsPath
            ?? throw new ConfigException($"method '{method}': model '{m.Name}' has no weights file (only local GGUF models can be merged)"))).ToList();
        var examples = context.Dev is { Examples.Count: > 0 } dev ? dev.Sample(options.DevSize, context.Seed) : [];
        var sb = new StringBuilder(method).Append('|').Append(context.Seed);
        foreach (var p in paths)
        {
            var fi = new FileInfo(p);
            sb.Append('|').Append(p).Append(':').Append(fi.Exists ? fi.Length : -1).Append(':').Append(fi.Exists ? fi.LastWriteTimeUtc.Ticks : 0);
        }
        // Adapters are part of what a member is (two adapter searches over one base are different searches).
        foreach (var m in context.Models)
            foreach (var a in m.Descriptor.Adapters)
            {
                var fi = new FileInfo(a.Path);
                sb.Append("|lora:").Append(a.Path).Append(':').Append(a.Scale.ToString("R", CultureInfo.InvariantCulture))
                  .Append(':').Append(fi.Exists ? fi.Length : -1).Append(':').Append(fi.Exists ? fi.LastWriteTimeUtc.Ticks : 0);
            }
        var settings = JsonSerializer.SerializeToNode(options, options.GetType())!.AsObject();
        settings.Remove("SearchDir");
        sb.Append('|').Append(settings.ToJsonString());
        foreach (var e in examples) sb.Append('|').Append(e.Id);
        string signature = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(sb.ToString())))[..24];
        string baseDir = context.BaseDirectory ?? Environment.CurrentDirectory;
        string dir = options.SearchDir is { } d ? Path.GetFullPath(Path.Combine(baseDir, d))
            : Path.Combine(Path.GetDirectoryName(WeightMergeMethod.CacheFolder)!, "searches", $"{method}-{signature[..12]}");
        var log = new EvaluationLog(Path.Combine(dir, "evaluations.jsonl"), signature);
        var search = new WeightSearch(context, options, method, loader, examples, paths, dir, log);
        search.Say($"search folder {dir}; {examples.Count} dev examples per candidate" + (log.Resumed > 0 ? $"; resuming with {log.Resumed} evaluation(s) from an earlier run" : ""));
        return search;
    }

    /// <summary>A progress line.</summary>
    public void Say(string message) => _context.Log?.Invoke($"{_context.Name} ({_method}): {message}");

    /// <summary>The dev score of member <paramref name="index"/> alone (its one-hot point in the log).</summary>
    public async Task<double> ScoreMemberAsync(int index, CancellationToken ct)
    {
        var point = new double[Paths.Count];
        point[index] = 1;
        double s = await Log.ScoreAsync(point, (_, t) => new ValueTask<double>(ScoreModelAsync(_context.Models[index], t)), ct, "member:" + index).ConfigureAwait(false);
        Say($"member '{_context.Models[index].Name}': dev {s:F4}");
        return s;
    }

    /// <summary>
    /// The dev score of <paramref name="recipe"/>: merged into a temporary GGUF in the search folder, loaded, scored and
    /// deleted; memoized under <paramref name="point"/> (what the search knows the candidate by).
    /// </summary>
    public async Task<double> ScoreRecipeAsync(MergeRecipe recipe, double[] point, string label, CancellationToken ct)
    {
        bool known = Log.All.Any(c => c.Key == EvaluationLog.KeyOf(point));
        double s = await Log.ScoreAsync(point, async (_, t) =>
        {
            string folder = CandidateFolder();
            string file = Path.Combine(folder, $"candidate-{Environment.ProcessId}-{Interlocked.Increment(ref _candidates)}.gguf");
            try
            {
                await MergeAsync(recipe, file, t).ConfigureAwait(false);
                using var model = await _loader.LoadAsync(new GgufModelSpec($"{_context.Name}:{label}", file, file, new JsonObject { ["seed"] = _context.Seed }), t).ConfigureAwait(false);
                return await ScoreModelAsync(model, t).ConfigureAwait(false);
            }
            finally
            {
                File.Delete(file);
                // The tmpfs folder goes with its last candidate (another candidate still in it keeps it).
                if (folder != Directory)
                    try { System.IO.Directory.Delete(folder); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
            }
        }, ct).ConfigureAwait(false);
        Say($"{label}: dev {s:F4}{(known ? " (from the log)" : "")}");
        return s;
    }

    /// <summary>
    /// Where merged candidates live while they are scored: tmpfs (/dev/shm) when it has room for a few of them, so a search
    /// writes no checkpoint per candidate to disk; else the search folder. Each candidate is deleted after scoring.
    /// </summary>
    private string CandidateFolder()
    {
        const string shm = "/dev/shm";
        try
        {
            long need = 4 * Paths.Select(p => new FileInfo(p)).Where(f => f.Exists).Select(f => f.Length).DefaultIfEmpty(0).Max();
            if (System.IO.Directory.Exists(shm) && new DriveInfo(shm).AvailableFreeSpace > need)
            {
                var dir = Path.Combine(shm, "consort-search-" + Log.Signature[..12]);
                System.IO.Directory.CreateDirectory(dir);
                return dir;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException) { }
        return Directory;
    }

    /// <summary>The base file every member adapts (searches over LoRA adapters; see <see cref="CheckLoraMembers"/>).</summary>
    public string BasePath => Paths[0];

    /// <summary>
    /// Every member's adapters with their scales times the member's coefficient (members at 0 left out), one entry per adapter
    /// file: llama.cpp keeps one scale per loaded adapter, so the scales of members sharing a file are summed.
    /// </summary>
    public IReadOnlyList<(string Adapter, double Scale)> AdaptersAt(IReadOnlyList<double> coefficients) =>
        [.. _context.Models.SelectMany((m, i) => coefficients[i] == 0 ? [] : m.Descriptor.Adapters.Select(a => (Path: Path.GetFullPath(a.Path), Scale: coefficients[i] * a.Scale)))
            .GroupBy(a => a.Path, StringComparer.Ordinal).Select(g => (g.Key, g.Sum(a => a.Scale)))];

    /// <summary>
    /// The dev score of base + Σ coefficient_i · ΔW_i: the base loaded with every member's adapters at scaled strengths (llama.cpp
    /// applies them at load time: no weights are written); memoized under <paramref name="point"/>.
    /// </summary>
    public async Task<double> ScoreAdaptersAsync(double[] coefficients, double[] point, string label, CancellationToken ct)
    {
        bool known = Log.All.Any(c => c.Key == EvaluationLog.KeyOf(point));
        double s = await Log.ScoreAsync(point, async (_, t) =>
        {
            using var model = await _loader.LoadAsync(AdapterSpec($"{_context.Name}:{label}", coefficients), t).ConfigureAwait(false);
            return await ScoreModelAsync(model, t).ConfigureAwait(false);
        }, ct).ConfigureAwait(false);
        Say($"{label}: dev {s:F4}{(known ? " (from the log)" : "")}");
        return s;
    }

    /// <summary>
    /// Writes the adapter combination as a mergekit recipe (best.yml: task_arithmetic over base+adapter inputs) and the merged
    /// model (best.gguf), and returns the base with the adapters at those scales (exactly what was scored).
    /// </summary>
    public async Task<ConsortModel> FinishAdaptersAsync(double[] coefficients, IReadOnlyList<string> comments, CancellationToken ct)
    {
        string yml = Path.Combine(Directory, "best.yml"), gguf = Path.Combine(Directory, "best.gguf");
        var adapters = AdaptersAt(coefficients);
        MergeRecipe.ForAdapters(BasePath, adapters, comments).Save(yml);
        await Task.Run(() => Consort.Weights.Lora.LoraMerger.Merge(BasePath, adapters.Select(a => (a.Adapter, a.Scale)).ToList(), gguf, ct), ct).ConfigureAwait(false);
        Say($"best recipe written to {yml}; merged model {gguf}");
        var loaded = await _loader.LoadAsync(AdapterSpec(_context.Name, coefficients), ct).ConfigureAwait(false);
        return new ConsortModel(loaded.Descriptor, loaded.Chat, loaded.Tokens, _context.Models, _method, loaded);
    }

    private GgufModelSpec AdapterSpec(string name, IReadOnlyList<double> coefficients) => new(name, BasePath, BasePath, new JsonObject
    {
        ["seed"] = _context.Seed,
        ["lora"] = new JsonArray(AdaptersAt(coefficients).Select(a => (JsonNode)new JsonObject { ["path"] = a.Adapter, ["scale"] = a.Scale }).ToArray()),
    });

    /// <summary>Σ coefficient_i · member_i as a linear recipe (members with coefficient 0 left out: they add nothing).</summary>
    public MergeRecipe Linear(double[] coefficients, IReadOnlyList<string>? comments = null)
    {
        var used = Enumerable.Range(0, coefficients.Length).Where(i => coefficients[i] != 0).ToList();
        return MergeRecipe.ForCoefficients(used.Select(i => Paths[i]).ToList(), used.Select(i => coefficients[i]).ToList(), comments);
    }

    /// <summary>Writes the best recipe (best.yml), merges it (best.gguf), loads it and returns it as the method's model.</summary>
    public async Task<ConsortModel> FinishAsync(MergeRecipe best, CancellationToken ct)
    {
        string yml = Path.Combine(Directory, "best.yml"), gguf = Path.Combine(Directory, "best.gguf");
        best.Save(yml);
        await MergeAsync(best, gguf, ct).ConfigureAwait(false);
        Say($"best recipe written to {yml}; merged model {gguf}");
        var loaded = await _loader.LoadAsync(new GgufModelSpec(_context.Name, gguf, gguf, new JsonObject { ["seed"] = _context.Seed }), ct).ConfigureAwait(false);
        return new ConsortModel(loaded.Descriptor, loaded.Chat, loaded.Tokens, _context.Models, _method, loaded);
    }

    /// <summary>Mean dev score of <paramref name="model"/> on the sample (the task's options, the method's settings, the run's seed).</summary>
    public async Task<double> ScoreModelAsync(ConsortModel model, CancellationToken ct)
    {
        var scores = await CollaborationChatClient.ParallelAsync(_examples, _context.MaxConcurrency, async (e, _, t) =>
        {
            var r = await model.Chat.GetResponseAsync(e.Messages, _options.Apply(e.Options, seed: _context.Seed), t).ConfigureAwait(false);
            return e.Score(r.Text);
        }, ct).ConfigureAwait(false);
        return scores.DefaultIfEmpty(0).Average();
    }

    private Task MergeAsync(MergeRecipe recipe, string file, CancellationToken ct) =>
        Task.Run(() => MergeEngine.Run(recipe.ToMergeConfig($"method '{_method}' ({_context.Name})"), file, ct: ct), ct);
}
