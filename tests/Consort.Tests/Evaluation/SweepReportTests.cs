using System.Text.Json.Nodes;
using Consort.Config;
using Consort.Evaluation;
using Consort.Evaluation.Routing;
using Consort.Testing;

namespace Consort.Tests.Evaluation;

public class SweepReportTests
{
    private static ResultRecord Line(string json) => ResultRecord.FromJson(JsonNode.Parse(json)!.AsObject());

    private static ResultRecord Decoded(string key, double score, double rate, int tokens) => Line(
        $$$"""{"key": "{{{key}}}", "score": {{{score}}}, "usage": {"input_tokens": 1, "output_tokens": {{{tokens}}}}, "trace": [{"model": "gen", "role": "generator", "data": {"deferral_rate": {{{rate}}}, "tokens": {{{tokens}}}, "strong": "mentor"}}]}""");

    private static ResultRecord Alone(string key, double score) => Line($$$"""{"key": "{{{key}}}", "score": {{{score}}}, "usage": {"input_tokens": 1, "output_tokens": 2}}""");

    private static readonly SweepGroup Group = new("co_llm", "deferral_threshold", [(0.2, "co_llm@deferral_threshold=0.2"), (0.6, "co_llm@deferral_threshold=0.6")], ["gen", "mentor"]);

    // Hand-computed: gen alone scores 0 and 1 (0.5), mentor alone 1 and 1 (1.0).
    // At 0.2 the mentor writes 2 of 4 and 1 of 4 tokens (share 3/8) and both items score 1;
    // at 0.6 it writes 0 of 2 and 1 of 2 (share 1/4) and the items score 0 and 1.
    private static Dictionary<string, IReadOnlyList<ResultRecord>> Records() => new()
    {
        ["gen"] = [Alone("k0", 0), Alone("k1", 1)],
        ["mentor"] = [Alone("k0", 1), Alone("k1", 1)],
        ["co_llm@deferral_threshold=0.2"] = [Decoded("k0", 1, 0.5, 4), Decoded("k1", 1, 0.25, 4)],
        ["co_llm@deferral_threshold=0.6"] = [Decoded("k0", 0, 0, 2), Decoded("k1", 1, 0.5, 2)],
    };

    [Fact]
    public void ASweepIsACurveOverTheStrongMembersShareOfTokensEndedByTheMembersAlone()
    {
        var c = SweepReport.Build(Group, Records(), out var why);
        Assert.Null(why);
        Assert.Equal(("mentor", "gen"), (c!.StrongModel, c.WeakModel));
        Assert.Equal([0, 0.25, 0.375, 1], c.Points.Select(p => p.StrongShare));
        Assert.Equal([0.5, 0.5, 1, 1], c.Points.Select(p => p.Score));
        Assert.Equal([0.0, 0.0, 1.0, 1.0], c.Points.Select(p => c.Pgr(p.Score)!.Value));
        Assert.True(double.IsNaN(c.Points[0].Threshold) && double.IsNaN(c.Points[^1].Threshold)); // the members alone
        Assert.Equal([0.6, 0.2], c.Points.Skip(1).Take(2).Select(p => p.Threshold));
        // Area: 0.25·0.5 + 0.125·0.75 + 0.625·1 = 0.84375; APGR = (0.84375 − 0.5) / 0.5.
        Assert.Equal(0.84375, c.Auc, 12);
        Assert.Equal(0.6875, c.Apgr!.Value, 12);
        // CPT: targets 0.6, 0.75, 0.9 are crossed between shares 0.25 (0.5) and 0.375 (1.0).
        Assert.Equal(0.275, c.Cpt[20]!.Value, 12);
        Assert.Equal(0.3125, c.Cpt[50]!.Value, 12);
        Assert.Equal(0.35, c.Cpt[80]!.Value, 12);
        // Random mixing at share 0.25 scores 0.625, above the sweep point there.
        Assert.Equal(-0.125, c.MinMarginOverRandom, 12);
        Assert.Equal([3, 3, 5, 3], c.Points.Select(p => p.Cost)); // measured tokens per item (unpriced)
        var json = c.ToJson();
        Assert.Equal("strong_token_share", (string)json["x"]!);
        Assert.Equal("deferral_threshold", (string)json["swept"]!);
    }

    [Fact]
    public void WithoutTheMembersAloneThereIsNoCurveAndTheReasonSaysWhatToSet()
    {
        var records = Records();
        records.Remove("mentor");
        Assert.Null(SweepReport.Build(Group, records, out var why));
        Assert.Contains("no results of mentor alone (set \"baselines\": true)", why);
    }

    [Fact]
    public void AfterARunTheCurveGoesIntoEverySweepRunsSummaryAndATable()
    {
        using var dir = new TempDir();
        var folders = new Dictionary<string, string>();
        foreach (var (name, records) in Records())
        {
            var folder = Path.Combine(dir.Path, name.Replace('@', '_').Replace('=', '_'));
            Directory.CreateDirectory(folder);
            File.WriteAllLines(Path.Combine(folder, "results.jsonl"), records.Select(r => r.Json.ToJsonString()));
            File.WriteAllText(Path.Combine(folder, "summary.json"), """{"score": 0.5}""");
            folders[name] = folder;
        }
        var table = Assert.Single(SweepReport.AttachToRuns([Group], folders));
        Assert.Contains("co_llm (sweep of deferral_threshold): sweep curve (strong = mentor 1.000, weak = gen 0.500)", table);
        Assert.Contains("alone", table);
        Assert.Contains("CPT(50%) 0.313", table);
        foreach (var (_, run) in Group.Points)
        {
            var summary = JsonNode.Parse(File.ReadAllText(Path.Combine(folders[run], "summary.json")))!;
            Assert.Equal(0.6875, (double)summary["routing"]!["apgr"]!, 12);
            Assert.Equal(4, summary["quality_cost"]!.AsArray().Count);
        }
        Assert.False(JsonNode.Parse(File.ReadAllText(Path.Combine(folders["gen"], "summary.json")))!.AsObject().ContainsKey("routing"));
    }
}
