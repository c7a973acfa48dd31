using System.Text.Json.Nodes;

namespace Consort.Evaluation;

/// <summary>One finished run folder read back: its summary (typed and raw) and its result records.</summary>
public sealed class RunResults
{
    private RunResults(string name, string folder, EvalSummary summary, JsonObject raw, IReadOnlyList<ResultRecord> records)
    {
        Name = name; Folder = folder; Summary = summary; Raw = raw; Records = records;
    }

    /// <summary>Run name (the folder's name).</summary>
    public string Name { get; }
    /// <summary>The folder.</summary>
    public string Folder { get; }
    /// <summary>summary.json.</summary>
    public EvalSummary Summary { get; }
    /// <summary>summary.json as JSON (fields other tools add, e.g. a router's quality-cost sweep).</summary>
    public JsonObject Raw { get; }
    /// <summary>results.jsonl, one record per item key (later lines win).</summary>
    public IReadOnlyList<ResultRecord> Records { get; }
    /// <summary>Records by item key.</summary>
    public IReadOnlyDictionary<string, ResultRecord> ByKey => _byKey ??= Records.ToDictionary(r => r.Key, StringComparer.Ordinal);
    private Dictionary<string, ResultRecord>? _byKey;
    /// <summary>True for a single model (not a collaboration).</summary>
    public bool IsSingle => Summary.Method is "single_model" or "single";

    /// <summary>Reads a run folder (summary.json and results.jsonl).</summary>
    /// <exception cref="ConsortException">Not a run folder.</exception>
    public static RunResults Load(string folder)
    {
        var full = Path.GetFullPath(folder);
        var path = Path.Combine(full, EvalSummary.FileName);
        if (!File.Exists(path)) throw new ConsortException($"{folder}: not a run folder (no {EvalSummary.FileName})");
        // Any folder can be passed here: bounded parsing, and a damaged file is named rather than an internal error.
        var raw = Consort.Formats.SafeJson.ParseNodeFile(path, Limits.MaxConfigBytes, "a run summary", Consort.Formats.SafeJson.Kind.Data) as JsonObject
                  ?? throw new ConsortException($"{path}: not a JSON object");
        var summary = EvalSummary.Read(full);
        var byKey = new Dictionary<string, ResultRecord>(StringComparer.Ordinal);
        foreach (var r in ResultsFile.Read(Path.Combine(full, EvalRunner.ResultsFileName))) byKey[r.Key] = r;
        return new RunResults(Path.GetFileName(full), full, summary, raw, byKey.Values.ToList());
    }

    /// <summary>
    /// The runs of a folder: the folder itself when it is a run folder, else its run subfolders in comparison.json's
    /// order (then by name).
    /// </summary>
    public static IReadOnlyList<RunResults> LoadAll(string folder)
    {
        var full = Path.GetFullPath(folder);
        if (!Directory.Exists(full)) throw new ConsortException($"{folder}: folder not found");
        if (File.Exists(Path.Combine(full, EvalSummary.FileName))) return [Load(full)];
        var dirs = Directory.GetDirectories(full).Where(d => File.Exists(Path.Combine(d, EvalSummary.FileName))).ToList();
        if (dirs.Count == 0) throw new ConsortException($"{folder}: no runs inside (folders with {EvalSummary.FileName}); give a `consort run` output folder");
        var order = new List<string>();
        var comparison = Path.Combine(full, "comparison.json");
        if (File.Exists(comparison) && Consort.Formats.SafeJson.ParseNodeFile(comparison, Limits.MaxConfigBytes, "a comparison", Consort.Formats.SafeJson.Kind.Data) is JsonObject c
            && c["runs"] is JsonArray runs)
            order.AddRange(runs.Select(r => r is JsonObject o && o["folder"] is JsonValue v && v.TryGetValue<string>(out var f) ? f : null).OfType<string>().Select(Path.GetFileName).OfType<string>());
        return dirs.OrderBy(d => order.IndexOf(Path.GetFileName(d)) is var i && i >= 0 ? i : int.MaxValue).ThenBy(d => d, StringComparer.Ordinal)
            .Select(Load).ToList();
    }
}

/// <summary>Comparisons across the runs of one invocation (same items): oracle, agreement, Pareto front, call shares.</summary>
public static class RunAnalysis
{
    /// <summary>Item keys every run scored (in the first run's order).</summary>
    public static IReadOnlyList<string> CommonKeys(IReadOnlyList<RunResults> runs)
    {
        if (runs.Count == 0) return [];
        return runs[0].Records.Select(r => r.Key).Where(k => runs.All(x => x.ByKey.ContainsKey(k))).ToList();
    }

    /// <summary>The oracle: share of common items that at least one single-model run solves (mean of the best score),
    /// or null without single-model runs.</summary>
    public static (double Score, int N, IReadOnlyList<string> Runs)? Oracle(IReadOnlyList<RunResults> runs)
    {
        var singles = runs.Where(r => r.IsSingle).ToList();
        if (singles.Count == 0) return null;
        var keys = CommonKeys(singles);
        if (keys.Count == 0) return null;
        double score = keys.Average(k => singles.Max(s => s.ByKey[k].Score));
        return (score, keys.Count, singles.Select(s => s.Name).ToList());
    }

    /// <summary>Share of common items on which two runs give the same answer (extracted answers, else outputs).</summary>
    public static double Agreement(RunResults a, RunResults b)
    {
        var keys = a.Records.Select(r => r.Key).Where(b.ByKey.ContainsKey).ToList();
        if (keys.Count == 0) return double.NaN;
        static string Answer(ResultRecord r) => (r.Extracted is { Length: > 0 } e ? e : r.Output ?? "").Trim().ToLowerInvariant();
        return keys.Count(k => Answer(a.ByKey[k]) == Answer(b.ByKey[k])) / (double)keys.Count;
    }

    /// <summary>Indices of the points on the Pareto front (lower x and higher y are better).</summary>
    public static IReadOnlyList<int> ParetoFront(IReadOnlyList<(double X, double Y)> points)
    {
        var front = new List<int>();
        for (int i = 0; i < points.Count; i++)
        {
            bool dominated = false;
            for (int j = 0; j < points.Count && !dominated; j++)
                dominated = j != i && points[j].X <= points[i].X && points[j].Y >= points[i].Y && (points[j].X < points[i].X || points[j].Y > points[i].Y);
            if (!dominated) front.Add(i);
        }
        return front.OrderBy(i => points[i].X).ToList();
    }

    /// <summary>Inner calls per member model (top-level trace entries) as shares of all the run's inner calls; empty for single models.</summary>
    public static IReadOnlyDictionary<string, double> CallShares(RunResults run)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var r in run.Records)
            if (r.Json["trace"] is JsonArray trace)
                foreach (var t in trace)
                {
                    var model = (t?["model"] ?? t?["Model"])?.ToString();
                    if (model is not null) counts[model] = counts.GetValueOrDefault(model) + 1;
                }
        int total = counts.Values.Sum();
        return total == 0 ? new Dictionary<string, double>() : counts.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToDictionary(kv => kv.Key, kv => kv.Value / (double)total);
    }

    /// <summary>A quality-cost curve a run recorded in summary.json (<c>"quality_cost": [{"cost"|"tokens": x, "score": y, "label": ...}]</c>,
    /// as router sweeps write it), or null.</summary>
    public static IReadOnlyList<(double X, double Y, string? Label)>? QualityCost(RunResults run, out string axis)
    {
        axis = "cost";
        if (run.Raw["quality_cost"] is not JsonArray points || points.Count == 0) return null;
        // summary.json may come from anywhere: entries that are not objects are skipped, not an internal error.
        bool hasCost = points.All(p => p is JsonObject o && o["cost"] is JsonValue);
        axis = hasCost ? "cost" : "tokens";
        var list = new List<(double, double, string?)>();
        foreach (var p in points)
        {
            if (p is not JsonObject || p[axis] is not JsonValue xv || p["score"] is not JsonValue yv || !xv.TryGetValue<double>(out var x) || !yv.TryGetValue<double>(out var y)) continue;
            list.Add((x, y, (p["label"] ?? p["threshold"])?.ToString()));
        }
        return list.Count == 0 ? null : list;
    }
}
