using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Consort.Evaluation;
using Spectre.Console;

namespace Consort.Cli.Commands;

/// <summary>
/// <c>consort compare DIR...</c>: runs on the same items side by side with paired significance: the 95% paired
/// bootstrap interval of each run's difference from the reference run, and McNemar's exact test for 0/1 scores.
/// </summary>
public sealed class CompareCommand : ICliCommand
{
    /// <inheritdoc />
    public Command Build()
    {
        var dirs = new Argument<string[]>("dirs") { Description = "Run folders, or `consort run` output folders (all their runs).", Arity = ArgumentArity.OneOrMore };
        var baseline = new Option<string?>("--baseline") { Description = "Reference run (default: the first)." };
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var resamples = new Option<int>("--resamples") { Description = "Bootstrap resamples.", DefaultValueFactory = _ => 10_000 };
        var cmd = new Command("compare", "Compare runs on the same items: paired bootstrap interval of the difference, McNemar for 0/1 scores.")
        {
            dirs, baseline, json, resamples,
        };
        cmd.SetAction(pr =>
        {
            if (pr.GetValue(resamples) is < 100 or > 1_000_000) throw new ConfigException($"--resamples must be within [100, 1000000], got {pr.GetValue(resamples)}");
            var runs = new List<RunResults>();
            foreach (var d in pr.GetValue(dirs)!) runs.AddRange(RunResults.LoadAll(d));
            var dup = runs.GroupBy(r => r.Name).FirstOrDefault(g => g.Count() > 1);
            if (runs.Count < 2) throw new ConsortException("compare needs at least two runs");
            var reference = pr.GetValue(baseline) is { } b
                ? runs.FirstOrDefault(r => r.Name == b) ?? throw new ConsortException($"--baseline: no run named '{b}'; runs: {string.Join(", ", runs.Select(r => r.Name))}")
                : runs[0];
            foreach (var r in runs)
                if (r.Summary.Task != reference.Summary.Task || r.Summary.Split != reference.Summary.Split)
                    throw new ConsortException($"run '{r.Name}' is on {r.Summary.Task} ({r.Summary.Split}) but '{reference.Name}' on {reference.Summary.Task} ({reference.Summary.Split}): compare runs on the same items");
            var rows = new List<(RunResults Run, PairedComparison Cmp)>();
            foreach (var r in runs.Where(r => r != reference))
            {
                var keys = reference.Records.Select(x => x.Key).Where(r.ByKey.ContainsKey).ToList();
                var a = keys.Select(k => reference.ByKey[k].Score).ToList();
                var bs = keys.Select(k => r.ByKey[k].Score).ToList();
                rows.Add((r, PairedStatistics.Compare(a, bs, pr.GetValue(resamples))));
            }
            string Label(RunResults r) => dup is null ? r.Name : $"{r.Name} ({Path.GetFileName(Path.GetDirectoryName(r.Folder))})";
            if (pr.GetValue(json))
            {
                var doc = new JsonObject
                {
                    ["reference"] = Label(reference),
                    ["task"] = reference.Summary.Task,
                    ["split"] = reference.Summary.Split,
                    ["comparisons"] = new JsonArray(rows.Select(x => (JsonNode)new JsonObject
                    {
                        ["run"] = Label(x.Run), ["n"] = x.Cmp.N, ["score_reference"] = x.Cmp.MeanA, ["score"] = x.Cmp.MeanB,
                        ["difference"] = x.Cmp.Difference, ["ci_low"] = x.Cmp.Low, ["ci_high"] = x.Cmp.High,
                        ["only_reference"] = x.Cmp.OnlyA, ["only_run"] = x.Cmp.OnlyB, ["mcnemar_p"] = x.Cmp.McNemarP,
                    }).ToArray()),
                };
                Console.WriteLine(doc.ToJsonString(EvalJson.Indented));
                return 0;
            }
            var table = new Table().Border(TableBorder.Rounded).Title(Markup.Escape($"{reference.Summary.Task} ({reference.Summary.Split}): each run vs {Label(reference)}"));
            foreach (var c in new[] { "run", "n", "reference", "score", "difference", "95% CI (paired bootstrap)", "only ref / only run", "McNemar p" }) table.AddColumn(c);
            foreach (var (run, c) in rows)
            {
                bool significant = c.Low > 0 || c.High < 0;
                string diff = c.Difference.ToString("+0.000;-0.000;0.000", CultureInfo.InvariantCulture);
                table.AddRow(Markup.Escape(Label(run)), c.N.ToString(CultureInfo.InvariantCulture), c.MeanA.ToString("F3", CultureInfo.InvariantCulture), c.MeanB.ToString("F3", CultureInfo.InvariantCulture),
                    significant ? $"[bold]{diff}[/]" : diff, $"[[{c.Low:+0.000;-0.000;0.000}, {c.High:+0.000;-0.000;0.000}]]",
                    c.OnlyA is null ? "-" : $"{c.OnlyA} / {c.OnlyB}", c.McNemarP is { } p ? p.ToString(p < 0.001 ? "0.0e0" : "0.000", CultureInfo.InvariantCulture) : "-");
            }
            AnsiConsole.Write(table);
            Console.WriteLine("An interval that excludes 0 (bold difference) is a difference at the 95% level; McNemar's p tests the same for 0/1 scores.");
            return 0;
        });
        return cmd;
    }
}
