using System.Text.Json.Nodes;
using Consort.Config;

namespace Consort.Evaluation.Routing;

/// <summary>
/// The quality-cost curve of a hyperparameter sweep of a token-level method (co_llm's <c>deferral_threshold</c>,
/// nudging's <c>gamma</c>, ...), from files only: each sweep run's score and the share of answer tokens its strong member
/// wrote (the trace's <c>deferral_rate</c> and <c>tokens</c>, weighted by tokens), plus the two members alone (the
/// baselines) as the curve's ends at shares 0 and 1, whose outputs are reused rather than decoded again. PGR, APGR and
/// CPT are <see cref="RoutingCurve"/>'s, with x = the strong member's share of tokens.
/// </summary>
public static class SweepReport
{
    /// <summary>The curve over the items every sweep run and both members alone scored, or null with the reason.</summary>
    public static RoutingCurve? Build(SweepGroup group, IReadOnlyDictionary<string, IReadOnlyList<ResultRecord>> records, out string? why)
    {
        why = null;
        var missingRuns = group.Points.Where(p => !records.ContainsKey(p.Run)).Select(p => p.Run).ToList();
        if (missingRuns.Count > 0) { why = $"no results of {string.Join(", ", missingRuns)}"; return null; }
        var runs = group.Points.Select(p => records[p.Run].Where(r => r.Error is null && ShareData(r) is not null).ToDictionary(r => r.Key)).ToArray();
        var strongName = runs.SelectMany(d => d.Values).Select(r => (string?)ShareData(r)!["strong"]).FirstOrDefault(n => n is not null);
        if (strongName is null) { why = "its traces carry no token shares (deferral_rate, tokens, strong)"; return null; }
        var weakName = group.Members.FirstOrDefault(m => m != strongName);
        if (weakName is null) { why = "it has no weak member"; return null; }
        var missing = new[] { weakName, strongName }.Where(m => !records.ContainsKey(m)).ToList();
        if (missing.Count > 0) { why = $"no results of {string.Join(", ", missing)} alone (set \"baselines\": true)"; return null; }
        var weak = records[weakName].Where(r => r.Error is null).ToDictionary(r => r.Key);
        var strong = records[strongName].Where(r => r.Error is null).ToDictionary(r => r.Key);
        var keys = weak.Keys.Where(k => strong.ContainsKey(k) && runs.All(d => d.ContainsKey(k))).ToList();
        if (keys.Count == 0) { why = "no item was scored by every sweep run and by both members alone"; return null; }

        bool priced = keys.All(k => weak[k].Cost is not null && strong[k].Cost is not null && runs.All(d => d[k].Cost is not null));
        double Cost(ResultRecord r) => priced ? (double)r.Cost!.Value : r.InputTokens + r.OutputTokens;
        CurvePoint Point(double threshold, double share, IEnumerable<ResultRecord> rs)
        {
            var list = rs.ToList();
            return new CurvePoint(threshold, share, list.Average(Cost), list.Average(r => r.Score),
                new Dictionary<string, double> { [weakName] = 1 - share, [strongName] = share });
        }
        var points = new List<CurvePoint>
        {
            // The members alone are the ends of the curve (threshold NaN: no threshold applies).
            Point(double.NaN, 0, keys.Select(k => weak[k])),
            Point(double.NaN, 1, keys.Select(k => strong[k])),
        };
        for (int p = 0; p < group.Points.Count; p++)
        {
            double tokens = 0, byStrong = 0, rates = 0;
            foreach (var k in keys)
            {
                var d = ShareData(runs[p][k])!;
                double rate = (double?)d["deferral_rate"] ?? 0, n = (double?)d["tokens"] ?? 0;
                tokens += n; byStrong += rate * n; rates += rate;
            }
            double share = tokens > 0 ? byStrong / tokens : rates / keys.Count;
            points.Add(Point(group.Points[p].Value, share, keys.Select(k => runs[p][k])));
        }
        double s = keys.Average(k => strong[k].Score), w = keys.Average(k => weak[k].Score);
        return new RoutingCurve(strongName, weakName, s, w, points, share => share * s + (1 - share) * w)
        {
            X = "strong_token_share", CostUnit = priced ? "cost" : "tokens", Swept = group.Key,
        };
    }

    /// <summary>
    /// After a <c>consort run</c>: for every sweep whose runs and members' baselines have results, adds the curve to each
    /// sweep run's summary.json and returns its printable table (or a line saying why there is none).
    /// </summary>
    public static IReadOnlyList<string> AttachToRuns(IReadOnlyList<SweepGroup> sweeps, IReadOnlyDictionary<string, string> folders)
    {
        if (sweeps.Count == 0) return [];
        var records = RoutingReport.ReadRuns(folders);
        var lines = new List<string>();
        foreach (var g in sweeps)
        {
            if (!g.Points.Any(p => records.ContainsKey(p.Run))) continue; // not run this time (--only)
            var curve = Build(g, records, out var why);
            if (curve is null) { lines.Add($"{g.Name}: no sweep curve ({why})"); continue; }
            foreach (var p in g.Points)
                if (Path.Combine(folders[p.Run], "summary.json") is var summary && File.Exists(summary)) RoutingReport.Attach(summary, curve);
            lines.Add(RoutingReport.Table($"{g.Name} (sweep of {g.Key})", curve));
        }
        return lines;
    }

    // The trace data of the decode (the entry that says how many answer tokens the strong member wrote).
    private static JsonObject? ShareData(ResultRecord r) =>
        (r.Json["trace"] as JsonArray)?.Select(t => t?["data"] as JsonObject).FirstOrDefault(d => d?["deferral_rate"] is not null && d["strong"] is not null);
}
