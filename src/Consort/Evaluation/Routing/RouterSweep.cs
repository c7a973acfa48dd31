using Consort.Methods.Api.Routing;

namespace Consort.Evaluation.Routing;

/// <summary>
/// Sweeps a router's threshold over items whose every member's answer was scored once (RouteLLM's way: each
/// member answers each item once; every operating point reuses those outcomes), at a threshold calibrated to a target
/// share of strong-member calls (<see cref="ThresholdCalibration"/>).
/// </summary>
public static class RouterSweep
{
    /// <summary>
    /// The reference pair: strong = the most expensive member (ties: best mean score), weak = the cheapest
    /// (ties: worst mean score), so that with equal prices they are the best and the worst member.
    /// </summary>
    public static (int Strong, int Weak) References(IReadOnlyList<double[]> quality, IReadOnlyList<double[]> cost)
    {
        int m = quality[0].Length;
        var q = Enumerable.Range(0, m).Select(j => quality.Average(r => r[j])).ToArray();
        var c = Enumerable.Range(0, m).Select(j => cost.Average(r => r[j])).ToArray();
        var order = Enumerable.Range(0, m).OrderBy(j => c[j]).ThenBy(j => q[j]).ToArray();
        return (order[^1], order[0] == order[^1] ? order[1] : order[0]);
    }

    /// <summary>
    /// Sweeps the threshold on the strong member's advantage: item i goes to <paramref name="strong"/> when
    /// advantage[i] ≥ threshold, else to <paramref name="fallback"/>[i]. Thresholds are the advantages' quantiles at
    /// 0, 1/points, ..., 1 (RouteLLM's equal-count bins) plus one above all of them (no strong calls).
    /// </summary>
    public static RoutingCurve Sweep(IReadOnlyList<string> models, IReadOnlyList<double[]> quality, IReadOnlyList<double[]> cost,
        IReadOnlyList<double> advantage, IReadOnlyList<int> fallback, int strong, int weak, int points = 10, double? targetShare = null)
    {
        if (advantage.Count != quality.Count || fallback.Count != quality.Count) throw new ArgumentException("one advantage and one fallback per item");
        if (points < 1) throw new ArgumentOutOfRangeException(nameof(points), "at least one sweep point");
        var thresholds = Enumerable.Range(0, points + 1).Select(k => ThresholdCalibration.Quantile(advantage, k / (double)points)).Append(double.PositiveInfinity).Distinct().ToList();
        double? calibrated = targetShare is { } t ? ThresholdCalibration.Calibrate(advantage, t) : null;
        if (calibrated is { } ct && !thresholds.Contains(ct)) thresholds.Add(ct);
        int[] Decide(double thr) => Enumerable.Range(0, quality.Count).Select(i => advantage[i] >= thr ? strong : fallback[i]).ToArray();
        // Thresholds that make the same decisions are one operating point (kept once, the calibrated one if it is among them).
        var decisions = thresholds.OrderBy(thr => calibrated is { } k && thr.Equals(k) ? 0 : 1).Select(thr => (Threshold: thr, Chosen: Decide(thr)))
            .DistinctBy(d => string.Join(",", d.Chosen)).Select(d => (d.Threshold, (IReadOnlyList<int>)d.Chosen));
        var curve = FromDecisions(models, quality, cost, decisions, strong, weak);
        if (calibrated is not { } c) return curve;
        var at = curve.Points.First(p => p.Threshold.Equals(c));
        return new RoutingCurve(curve.StrongModel, curve.WeakModel, curve.StrongScore, curve.WeakScore, curve.Points, RandomScore(quality, strong))
        { Calibration = (targetShare!.Value, c, at.StrongShare) };
    }

    /// <summary>A curve from explicit decisions (a member index per item at each threshold), e.g. an N-stage cascade.</summary>
    public static RoutingCurve FromDecisions(IReadOnlyList<string> models, IReadOnlyList<double[]> quality, IReadOnlyList<double[]> cost,
        IEnumerable<(double Threshold, IReadOnlyList<int> Chosen)> decisions, int strong, int weak)
    {
        int n = quality.Count;
        if (n == 0) throw new ArgumentException("no items");
        if (cost.Count != n) throw new ArgumentException("one cost row per item");
        var points = decisions.Select(d =>
        {
            if (d.Chosen.Count != n) throw new ArgumentException("one decision per item");
            var counts = new double[models.Count];
            double score = 0, spent = 0;
            for (int i = 0; i < n; i++) { int m = d.Chosen[i]; counts[m]++; score += quality[i][m]; spent += cost[i][m]; }
            return new CurvePoint(d.Threshold, counts[strong] / n, spent / n, score / n,
                models.Select((name, m) => KeyValuePair.Create(name, counts[m] / n)).ToDictionary());
        }).ToList();
        return new RoutingCurve(models[strong], models[weak], quality.Average(q => q[strong]), quality.Average(q => q[weak]), points, RandomScore(quality, strong));
    }

    /// <summary>
    /// Expected score of random routing that calls the strong member with probability s and otherwise a uniformly
    /// chosen other member (for two members: RouteLLM's random router, a straight line from weak to strong).
    /// </summary>
    public static Func<double, double> RandomScore(IReadOnlyList<double[]> quality, int strong)
    {
        int m = quality[0].Length;
        double s = quality.Average(q => q[strong]);
        double others = Enumerable.Range(0, m).Where(j => j != strong).Average(j => quality.Average(q => q[j]));
        return share => share * s + (1 - share) * others;
    }
}
