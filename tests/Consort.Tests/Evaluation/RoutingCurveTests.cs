using Consort.Evaluation;
using Consort.Testing;
using Consort.Evaluation.Routing;
using Consort.Methods.Api.Routing;

namespace Consort.Tests.Evaluation;

public class RoutingCurveTests
{
    // Hand-computed: weak scores [1,0,0,0] (0.25), strong [1,1,1,0] (0.75); the router's advantage ranks
    // item 1, then 2, 3, 0. Strong shares 0, .25, .5, .75, 1 give scores .25, .5, .75, .75, .75.
    private static readonly double[][] Quality = [[1, 1], [0, 1], [0, 1], [0, 0]];
    private static readonly double[][] Cost = [[1, 3], [1, 3], [1, 3], [1, 3]];
    private static readonly double[] Advantage = [0.1, 0.9, 0.5, 0.3];

    private static RoutingCurve Curve(double? target = null) =>
        RouterSweep.Sweep(["weak", "strong"], Quality, Cost, Advantage, [0, 0, 0, 0], strong: 1, weak: 0, points: 4, targetShare: target);

    [Fact]
    public void CurveAucApgrAndCptMatchTheHandComputedValues()
    {
        var c = Curve();
        Assert.Equal([0, 0.25, 0.5, 0.75, 1], c.Points.Select(p => p.StrongShare));
        Assert.Equal([0.25, 0.5, 0.75, 0.75, 0.75], c.Points.Select(p => p.Score));
        Assert.Equal([1, 1.5, 2, 2.5, 3], c.Points.Select(p => p.Cost));
        Assert.Equal(0.625, c.Auc, 12);   // .09375 + .15625 + .1875 + .1875
        Assert.Equal(0.75, c.Apgr!.Value, 12); // (.625 - .25) / (.75 - .25)
        Assert.Equal(0.1, c.Cpt[20]!.Value, 12);  // target .35, between shares 0 (.25) and .25 (.5)
        Assert.Equal(0.25, c.Cpt[50]!.Value, 12); // target .5
        Assert.Equal(0.4, c.Cpt[80]!.Value, 12);  // target .65, between .25 (.5) and .5 (.75)
        Assert.Equal(0.5, c.Pgr(0.5)!.Value, 12);
        Assert.Equal(0.75, c.Points[1].Shares["weak"], 12);
        // Random routing: .25 + s * .5; the router is above it everywhere but at the ends.
        Assert.Equal(0.375, c.Random[1].Score, 12);
        Assert.Equal(0, c.MinMarginOverRandom, 12);
        Assert.Equal("strong", c.StrongModel);
        Assert.Equal("strong_share", (string?)c.ToJson()["x"]);
        Assert.Null(c.ToJson()["points"]![0]!["threshold"]); // +inf: no strong calls
    }

    [Fact]
    public void CalibrationHitsTheTargetShareOfStrongCalls()
    {
        Assert.Equal(0.4, ThresholdCalibration.Calibrate(Advantage, 0.5), 12); // RouteLLM: quantile(1 - share), linear interpolation
        var c = Curve(0.5);
        Assert.Equal(0.5, c.Calibration!.Value.StrongShare, 12);
        Assert.Equal(0.75, c.Points.First(p => p.Threshold == c.Calibration.Value.Threshold).Score, 12);
        var json = c.ToJson()["calibration"]!;
        Assert.Equal(0.5, (double)json["target_strong_share"]!);
        Assert.Equal(double.PositiveInfinity, ThresholdCalibration.Calibrate(Advantage, 0));
        Assert.Equal(0.1, ThresholdCalibration.Calibrate(Advantage, 1), 12);
        Assert.Throws<ArgumentOutOfRangeException>(() => ThresholdCalibration.Calibrate(Advantage, 1.5));
        // On 100 spread values every target share is met exactly.
        var many = Enumerable.Range(0, 100).Select(i => (double)((i * 37) % 100)).ToArray();
        foreach (var share in new[] { 0.2, 0.5, 0.8 })
        {
            double t = ThresholdCalibration.Calibrate(many, share);
            Assert.Equal(share, many.Count(a => a >= t) / 100.0, 2);
        }
    }

    [Fact]
    public void UndefinedMetricsAreNullNotNaN()
    {
        var flat = RouterSweep.Sweep(["a", "b"], [[1, 1], [0, 0]], [[1, 1], [1, 1]], [0.5, 0.1], [0, 0], 1, 0, points: 2);
        Assert.Null(flat.Apgr);
        Assert.Null(flat.Cpt[50]);
        Assert.Null(flat.ToJson()["points"]![0]!["pgr"]);
    }

    [Fact]
    public void ReferencesAreTheMostAndLeastExpensiveOrTheBestAndWorst()
    {
        Assert.Equal((1, 0), RouterSweep.References(Quality, Cost));
        Assert.Equal((2, 1), RouterSweep.References([[0.5, 0, 1], [0.5, 0, 1]], [[1, 1, 1], [1, 1, 1]]));
        // N members: random = s * strong + (1 - s) * mean of the others.
        var random = RouterSweep.RandomScore([[1, 0, 0.5], [1, 0, 0.5]], 0);
        Assert.Equal(0.25, random(0), 12);
        Assert.Equal(0.625, random(0.5), 12);
    }

    [Fact]
    public void AreaIsTheTrapezoidRule() => Assert.Equal(1.5, RoutingCurve.Area([(0, 0), (1, 1), (2, 1)]), 12);

    [Fact]
    public void TheReportRebuildsTheCurveFromARouterRunAndTheMembersAloneWithoutCallingAgain()
    {
        static ResultRecord Line(string json) => ResultRecord.FromJson(System.Text.Json.Nodes.JsonNode.Parse(json)!.AsObject());
        // The hand-computed example above, as results files: the router's trace carries scores and the strong lead.
        var router = Enumerable.Range(0, 4).Select(i => Line(
            $$$"""{"key": "k{{{i}}}", "score": 0, "trace": [{"model": "weak", "role": "answer", "data": {"router": "knn", "scores": {"weak": 0, "strong": {{{Advantage[i]}}} }, "strong": "strong", "strong_advantage": {{{Advantage[i]}}} }}]}""")).ToList();
        var weak = Enumerable.Range(0, 4).Select(i => Line($$$"""{"key": "k{{{i}}}", "score": {{{Quality[i][0]}}}, "usage": {"input_tokens": 1, "output_tokens": 0}}""")).ToList();
        var strong = Enumerable.Range(0, 4).Select(i => Line($$$"""{"key": "k{{{i}}}", "score": {{{Quality[i][1]}}}, "usage": {"input_tokens": 2, "output_tokens": 1}}""")).ToList();
        var c = RoutingReport.Build(router, new Dictionary<string, IReadOnlyList<ResultRecord>> { ["weak"] = weak, ["strong"] = strong }, 4, 0.5, out var why);
        Assert.Null(why);
        Assert.Equal(0.75, c!.Apgr!.Value, 12);
        Assert.Equal([1, 1.5, 2, 2.5, 3], c.Points.Select(p => p.Cost)); // tokens: the members are unpriced
        Assert.Equal(0.5, c.Calibration!.Value.StrongShare, 12);
        Assert.Contains("APGR 0.750", RoutingReport.Table("r", c));
        Assert.Null(RoutingReport.Build(router, new Dictionary<string, IReadOnlyList<ResultRecord>> { ["weak"] = weak }, 4, null, out why));
        Assert.Contains("no results of strong alone", why);
        using var dir = new TempDir();
        File.WriteAllText(dir.File("summary.json"), """{"score": 0.5}""");
        RoutingReport.Attach(dir.File("summary.json"), c);
        var summary = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(dir.File("summary.json")))!;
        Assert.Equal(0.5, (double)summary["score"]!);
        Assert.Equal(0.75, (double)summary["routing"]!["apgr"]!, 12);
    }
}
