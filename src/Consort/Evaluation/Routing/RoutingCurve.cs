using System.Text.Json.Nodes;

namespace Consort.Evaluation.Routing;

/// <summary>One operating point of a router or cascade: what a threshold did on the evaluated items.</summary>
/// <param name="Threshold">The threshold (router: the strong member's advantage it needs; a sweep: the swept value; NaN: a member alone).</param>
/// <param name="StrongShare">Share of items sent to the strong member, in [0, 1].</param>
/// <param name="Cost">Mean cost per item of the chosen members (the members' cost unit).</param>
/// <param name="Score">Mean score of the chosen members' answers.</param>
/// <param name="Shares">Share of items per member, by name.</param>
public sealed record CurvePoint(double Threshold, double StrongShare, double Cost, double Score, IReadOnlyDictionary<string, double> Shares);

/// <summary>
/// RouteLLM's evaluation of a router: the quality-cost curve (x: share of calls to the strong member), the
/// performance gap recovered (PGR = (score − weak) / (strong − weak)), its average over the curve (APGR, the
/// normalized area under it), the call-performance thresholds CPT(20/50/80%) (the smallest strong share that
/// recovers that much of the gap), per-member call shares, and random routing at the same shares.
/// <para>
/// JSON shape (<see cref="ToJson"/>; <c>summary.json</c> holds it under <c>"routing"</c>), shares and CPTs as
/// fractions in [0, 1], null where undefined (e.g. PGR when strong and weak score the same):
/// <code>
/// { "x": "strong_share", "strong_model": "b", "weak_model": "a", "strong_score": 0.75, "weak_score": 0.25,
///   "points": [ { "threshold": 0.4, "strong_share": 0.5, "cost": 1.5, "score": 0.75, "pgr": 1.0, "shares": { "a": 0.5, "b": 0.5 } } ],
///   "random": [ { "strong_share": 0.5, "score": 0.5 } ],
///   "auc": 0.625, "apgr": 0.75, "cpt": { "20": 0.1, "50": 0.25, "80": 0.4 }, "min_margin_over_random": 0.0,
///   "calibration": { "target_strong_share": 0.5, "threshold": 0.4, "strong_share": 0.5 } }
/// </code>
/// Points are sorted by strong share; <c>calibration</c> is present when a target share was asked for. A hyperparameter
/// sweep (<see cref="SweepReport"/>) writes <c>"x": "strong_token_share"</c> and <c>"swept": "gamma"</c>, its thresholds are the
/// swept values, and its two members alone are points with threshold null at shares 0 and 1.
/// </para>
/// </summary>
public sealed class RoutingCurve
{
    /// <summary>Builds the curve and its metrics from operating points and the two reference members' scores.</summary>
    public RoutingCurve(string strongModel, string weakModel, double strongScore, double weakScore, IEnumerable<CurvePoint> points,
        Func<double, double> randomScore)
    {
        StrongModel = strongModel; WeakModel = weakModel; StrongScore = strongScore; WeakScore = weakScore;
        Points = points.OrderBy(p => p.StrongShare).ThenBy(p => p.Score).ToArray();
        if (Points.Count == 0) throw new ArgumentException("a curve needs at least one point");
        Random = Points.Select(p => (p.StrongShare, randomScore(p.StrongShare))).ToArray();
        Auc = Area(Points.Select(p => (p.StrongShare, p.Score)).ToArray());
        double range = Points[^1].StrongShare - Points[0].StrongShare;
        Apgr = strongScore > weakScore && range > 0 ? (Auc - weakScore * range) / ((strongScore - weakScore) * range) : null;
        Cpt = new Dictionary<int, double?> { [20] = CallsFor(0.2), [50] = CallsFor(0.5), [80] = CallsFor(0.8) };
        MinMarginOverRandom = Points.Zip(Random, (p, r) => p.Score - r.Score).Min();
    }

    /// <summary>The strong (most expensive) member.</summary>
    public string StrongModel { get; }
    /// <summary>The weak (cheapest) member, PGR's baseline.</summary>
    public string WeakModel { get; }
    /// <summary>The strong member's score alone.</summary>
    public double StrongScore { get; }
    /// <summary>The weak member's score alone.</summary>
    public double WeakScore { get; }
    /// <summary>Operating points by strong share.</summary>
    public IReadOnlyList<CurvePoint> Points { get; }
    /// <summary>Expected score of random routing at each point's strong share.</summary>
    public IReadOnlyList<(double StrongShare, double Score)> Random { get; }
    /// <summary>Trapezoid area under score over strong share.</summary>
    public double Auc { get; }
    /// <summary>Average performance gap recovered; null when strong does not beat weak.</summary>
    public double? Apgr { get; }
    /// <summary>CPT(p%): the least strong share reaching weak + p·(strong − weak); null when never reached.</summary>
    public IReadOnlyDictionary<int, double?> Cpt { get; }
    /// <summary>Smallest (score − random score) over the points: ≥ 0 means the curve never falls under random routing.</summary>
    public double MinMarginOverRandom { get; }
    /// <summary>Unit of <see cref="CurvePoint.Cost"/>: "cost" (the members' prices) or "tokens" (measured tokens).</summary>
    public string CostUnit { get; set; } = "tokens";
    /// <summary>What x is: "strong_share" (share of calls to the strong member) or "strong_token_share" (share of answer tokens it wrote).</summary>
    public string X { get; init; } = "strong_share";
    /// <summary>The hyperparameter a sweep varied (each point's threshold is its value); null for a router's threshold.</summary>
    public string? Swept { get; init; }
    /// <summary>The calibrated operating point, when one was asked for.</summary>
    public (double TargetShare, double Threshold, double StrongShare)? Calibration { get; init; }

    /// <summary>PGR of a score; null when strong does not beat weak.</summary>
    public double? Pgr(double score) => StrongScore > WeakScore ? (score - WeakScore) / (StrongScore - WeakScore) : null;

    /// <summary>Trapezoid rule over (x, y) sorted by x.</summary>
    public static double Area(IReadOnlyList<(double X, double Y)> points)
    {
        double a = 0;
        for (int i = 1; i < points.Count; i++) a += (points[i].X - points[i - 1].X) * (points[i].Y + points[i - 1].Y) / 2;
        return a;
    }

    // The first crossing of the target along the curve, interpolated linearly. (RouteLLM calls np.interp with
    // scores as x, which assumes a monotone curve; the first crossing is the same there and defined elsewhere.)
    private double? CallsFor(double fraction)
    {
        if (!(StrongScore > WeakScore)) return null;
        double target = WeakScore + fraction * (StrongScore - WeakScore);
        if (Points[0].Score >= target) return Points[0].StrongShare;
        for (int i = 1; i < Points.Count; i++)
        {
            var (a, b) = (Points[i - 1], Points[i]);
            if (b.Score >= target)
                return b.Score == a.Score ? b.StrongShare : a.StrongShare + (target - a.Score) / (b.Score - a.Score) * (b.StrongShare - a.StrongShare);
        }
        return null;
    }

    /// <summary>The JSON shape documented on the class.</summary>
    public JsonObject ToJson()
    {
        var json = new JsonObject
        {
            ["x"] = X,
            ["strong_model"] = StrongModel, ["weak_model"] = WeakModel,
            ["strong_score"] = StrongScore, ["weak_score"] = WeakScore,
            ["points"] = new JsonArray(Points.Select(p => (JsonNode)new JsonObject
            {
                ["threshold"] = Finite(p.Threshold), ["strong_share"] = p.StrongShare, ["cost"] = p.Cost, ["score"] = p.Score,
                ["pgr"] = Pgr(p.Score), ["shares"] = new JsonObject(p.Shares.Select(s => KeyValuePair.Create(s.Key, (JsonNode?)s.Value))),
            }).ToArray()),
            ["random"] = new JsonArray(Random.Select(r => (JsonNode)new JsonObject { ["strong_share"] = r.StrongShare, ["score"] = r.Score }).ToArray()),
            ["auc"] = Auc, ["apgr"] = Apgr,
            ["cpt"] = new JsonObject(Cpt.Select(c => KeyValuePair.Create(c.Key.ToString(System.Globalization.CultureInfo.InvariantCulture), (JsonNode?)c.Value))),
            ["min_margin_over_random"] = MinMarginOverRandom,
        };
        if (Swept is not null) json["swept"] = Swept;
        if (Calibration is { } c)
            json["calibration"] = new JsonObject { ["target_strong_share"] = c.TargetShare, ["threshold"] = Finite(c.Threshold), ["strong_share"] = c.StrongShare };
        return json;
    }

    /// <summary>
    /// The curve in the reports' shape (summary.json <c>"quality_cost"</c>): one point per operating point,
    /// <c>{"cost"|"tokens": mean per item, "score", "label": "strong share 40%"}</c>.
    /// </summary>
    public JsonArray ToQualityCost() => new(Points.Select(p => (JsonNode)new JsonObject
    {
        [CostUnit == "cost" ? "cost" : "tokens"] = p.Cost, ["score"] = p.Score, ["strong_share"] = p.StrongShare,
        ["label"] = $"strong {p.StrongShare.ToString("P0", System.Globalization.CultureInfo.InvariantCulture)}",
    }).ToArray());

    // JSON has no infinities: a threshold that sends nothing to the strong member is written as null.
    private static double? Finite(double v) => double.IsFinite(v) ? v : null;
}
