using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace Consort.Evaluation.Routing;

/// <summary>
/// The router evaluation of a finished run, from files only: a router run's results (each item's trace holds the
/// router's per-member <c>scores</c>, its <c>strong</c> member and <c>strong_advantage</c>) and the same items'
/// results of each member alone (the baselines). Every sweep point reuses those outputs; nothing is called again.
/// </summary>
public static class RoutingReport
{
    /// <summary>
    /// The curve over the items both the router run and every member's run scored, or null (with the reason) when
    /// the router run carries no router scores or a member has no results.
    /// </summary>
    public static RoutingCurve? Build(IReadOnlyList<ResultRecord> routerRun, IReadOnlyDictionary<string, IReadOnlyList<ResultRecord>> memberRuns,
        int points, double? targetShare, out string? why)
    {
        why = null;
        var withScores = routerRun.Where(r => r.Error is null && RouterData(r) is not null).ToList();
        if (withScores.Count == 0) { why = "its results carry no router scores"; return null; }
        var first = RouterData(withScores[0])!;
        var members = (first["scores"] as JsonObject)!.Select(kv => kv.Key).ToArray();
        string strongName = (string?)first["strong"] ?? "";
        int strong = Array.IndexOf(members, strongName);
        if (strong < 0) { why = "its router names no strong member"; return null; }
        var missing = members.Where(m => !memberRuns.ContainsKey(m)).ToList();
        if (missing.Count > 0) { why = $"no results of {string.Join(", ", missing)} alone (set \"baselines\": true)"; return null; }
        var byKey = members.Select(m => memberRuns[m].Where(r => r.Error is null).ToDictionary(r => r.Key)).ToArray();
        var quality = new List<double[]>(); var cost = new List<double[]>(); var advantage = new List<double>(); var fallback = new List<int>();
        bool priced = byKey.All(d => d.Values.All(r => r.Cost is not null));
        foreach (var r in withScores)
        {
            if (!byKey.All(d => d.ContainsKey(r.Key))) continue;
            var data = RouterData(r)!;
            var scores = members.Select(m => (double?)data["scores"]![m] ?? double.NegativeInfinity).ToArray();
            quality.Add(byKey.Select(d => d[r.Key].Score).ToArray());
            cost.Add(byKey.Select(d => priced ? (double)d[r.Key].Cost!.Value : d[r.Key].InputTokens + d[r.Key].OutputTokens).ToArray());
            advantage.Add((double?)data["strong_advantage"] ?? 0);
            int best = -1;
            for (int m = 0; m < members.Length; m++) if (m != strong && (best < 0 || scores[m] > scores[best])) best = m;
            fallback.Add(best);
        }
        if (quality.Count == 0) { why = "no item was scored by the router and by every member alone"; return null; }
        var (_, weak) = RouterSweep.References(quality, cost);
        if (weak == strong) weak = Enumerable.Range(0, members.Length).First(m => m != strong);
        var curve = RouterSweep.Sweep(members, quality, cost, advantage, fallback, strong, weak, points, targetShare);
        curve.CostUnit = priced ? "cost" : "tokens";
        return curve;
    }

    /// <summary>
    /// After a <c>consort run</c>: for every run whose results carry router scores and whose members also ran alone
    /// (<c>"baselines": true</c>), adds the curve to its summary.json and returns its printable table. Runs without
    /// router scores are skipped; a router run without its baselines gets a line saying why.
    /// </summary>
    /// <param name="folders">Each run's output folder, by run name.</param>
    /// <param name="points">Operating points of the sweep.</param>
    public static IReadOnlyList<string> AttachToRuns(IReadOnlyDictionary<string, string> folders, int points = 10)
    {
        var records = ReadRuns(folders);
        var lines = new List<string>();
        foreach (var (name, run) in records)
        {
            if (!run.Any(r => r.Error is null && RouterData(r) is not null)) continue;
            var summary = Path.Combine(folders[name], "summary.json");
            var curve = Build(run, records, points, null, out var why);
            if (curve is null || !File.Exists(summary)) { lines.Add($"{name}: no router curve ({why ?? "no summary.json"})"); continue; }
            Attach(summary, curve);
            lines.Add(Table(name, curve));
        }
        return lines;
    }

    /// <summary>Each run's results.jsonl, by run name (runs without one are left out).</summary>
    public static Dictionary<string, IReadOnlyList<ResultRecord>> ReadRuns(IReadOnlyDictionary<string, string> folders)
    {
        var records = new Dictionary<string, IReadOnlyList<ResultRecord>>(StringComparer.Ordinal);
        foreach (var (name, folder) in folders)
        {
            var path = Path.Combine(folder, "results.jsonl");
            if (File.Exists(path)) records[name] = ResultsFile.Read(path);
        }
        return records;
    }

    // The trace entry data of the routed call (the first entry that carries router scores).
    private static JsonObject? RouterData(ResultRecord r) =>
        (r.Json["trace"] as JsonArray)?.Select(t => t?["data"] as JsonObject).FirstOrDefault(d => d?["scores"] is JsonObject && d["strong"] is not null);

    /// <summary>Adds the curve to a run's summary.json under "routing" (the shape <see cref="RoutingCurve"/> documents).</summary>
    public static void Attach(string summaryPath, RoutingCurve curve)
    {
        var summary = JsonNode.Parse(File.ReadAllText(summaryPath))!.AsObject();
        summary["routing"] = curve.ToJson();
        summary["quality_cost"] = curve.ToQualityCost(); // the shape the reports chart
        var tmp = summaryPath + ".tmp";
        File.WriteAllText(tmp, summary.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
        File.Move(tmp, summaryPath, overwrite: true);
    }

    private static string Cut(string s) => s.Length <= 9 ? s : s[..9];

    /// <summary>The curve as a printable table: one row per operating point, then PGR, APGR and CPT.</summary>
    public static string Table(string run, RoutingCurve c)
    {
        static string F(double? v) => v is { } x ? x.ToString("0.000", CultureInfo.InvariantCulture) : "-";
        var sb = new StringBuilder();
        bool sweep = c.Swept is not null;
        sb.AppendLine($"{run}: {(sweep ? "sweep" : "router")} curve (strong = {c.StrongModel} {F(c.StrongScore)}, weak = {c.WeakModel} {F(c.WeakScore)})");
        sb.AppendLine(sweep ? $"  {Cut(c.Swept!),9}   strong tokens  score   pgr     random   tokens" : "  threshold   strong share   score   pgr     random   calls");
        foreach (var (p, r) in c.Points.Zip(c.Random))
            sb.AppendLine($"  {(double.IsNaN(p.Threshold) ? "alone" : double.IsFinite(p.Threshold) ? p.Threshold.ToString("0.0000", CultureInfo.InvariantCulture) : "none"),9}   {F(p.StrongShare),12}   {F(p.Score)}   {F(c.Pgr(p.Score)),6}  {F(r.Score)}    " +
                          string.Join(" ", p.Shares.Select(s => $"{s.Key} {s.Value.ToString("P0", CultureInfo.InvariantCulture)}")));
        sb.Append($"  APGR {F(c.Apgr)}, CPT(20%) {F(c.Cpt[20])}, CPT(50%) {F(c.Cpt[50])}, CPT(80%) {F(c.Cpt[80])}, min margin over random {F(c.MinMarginOverRandom)}");
        if (c.Calibration is { } cal) sb.Append($"\n  calibrated to {cal.TargetShare.ToString("P0", CultureInfo.InvariantCulture)} strong calls: threshold {cal.Threshold.ToString("G4", CultureInfo.InvariantCulture)} gives {cal.StrongShare.ToString("P1", CultureInfo.InvariantCulture)}");
        return sb.ToString();
    }
}
