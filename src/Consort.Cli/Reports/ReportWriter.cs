using System.Globalization;
using System.Net;
using System.Text;
using Consort.Evaluation;

namespace Consort.Cli.Reports;

/// <summary>Files a report wrote.</summary>
/// <param name="Html">report.html (self-contained: charts embedded as data URIs).</param>
/// <param name="Markdown">report.md (charts beside it in report_files/).</param>
/// <param name="Charts">Number of charts.</param>
public sealed record ReportFiles(string Html, string Markdown, int Charts);

/// <summary>
/// The report of a <c>consort run</c> output folder: a table of every run (score with its 95% interval, items,
/// errors, per-domain scores, tokens, cost), charts of the scores, of score against tokens and cost with the Pareto
/// front, of per-domain scores, of member call shares for routers and cascades, of quality-cost curves where runs
/// recorded them, of the agreement between runs, and the oracle (share of items some single model solves).
/// </summary>
public static class ReportWriter
{
    /// <summary>Name of the chart folder beside report.md.</summary>
    public const string FilesFolder = "report_files";

    /// <summary>Writes report.html and report.md into <paramref name="outDir"/>.</summary>
    /// <exception cref="ConsortException">No runs in the folder.</exception>
    public static ReportFiles Write(string outDir)
    {
        var runs = RunResults.LoadAll(outDir);
        var charts = new List<(string Id, string Title, string Caption, byte[] Png)>();
        var oracle = RunAnalysis.Oracle(runs);
        string task = runs[0].Summary.Task, split = runs[0].Summary.Split;

        charts.Add(("scores", "Scores", "Mean score per run with its 95% interval (Wilson for 0/1 scores)" + (oracle is { } o0 ? $"; dashed: the oracle, {o0.Score:F3}" : ""),
            Charts.Scores(runs.Select(r => (r.Name, r.Summary.Score, r.Summary.Ci?.Low ?? r.Summary.Score, r.Summary.Ci?.High ?? r.Summary.Score)).ToList(), oracle?.Score)));

        var tokenPoints = runs.Select(r => (r.Name, X: r.Summary.N == 0 ? 0 : (r.Summary.InputTokens + r.Summary.OutputTokens) / (double)r.Summary.N, r.Summary.Score)).ToList();
        charts.Add(("tokens", "Score against tokens", "Tokens (in + out) per item against score; the Pareto front joins the runs no other run beats on both",
            Charts.Tradeoff(tokenPoints, RunAnalysis.ParetoFront(tokenPoints.Select(p => (p.X, p.Score)).ToList()), "tokens per item", "Score against tokens per item")));
        var priced = runs.Where(r => r.Summary.Cost is not null).ToList();
        string costNote;
        if (priced.Count > 0)
        {
            var costPoints = priced.Select(r => (r.Name, X: (double)r.Summary.Cost!.Value / Math.Max(1, r.Summary.N), r.Summary.Score)).ToList();
            charts.Add(("cost", "Score against cost", "Cost per item against score, with the Pareto front",
                Charts.Tradeoff(costPoints, RunAnalysis.ParetoFront(costPoints.Select(p => (p.X, p.Score)).ToList()), "cost per item", "Score against cost per item")));
            costNote = "";
        }
        else costNote = "No model has prices (price_input_per_million / price_output_per_million), so there is no cost chart; tokens stand in for cost.";

        var domains = runs.SelectMany(r => r.Summary.Groups?.Keys ?? []).Distinct().Order(StringComparer.Ordinal).ToList();
        if (domains.Count > 0)
            charts.Add(("domains", "Score per domain", "Mean score of each run on each domain of the items",
                Charts.Domains(runs.Select(r => r.Name).ToList(), domains, (r, d) => runs[r].Summary.Groups?.TryGetValue(domains[d], out var g) == true ? g.Score : null)));

        var shares = runs.Where(r => !r.IsSingle).Select(r => (r.Name, Shares: RunAnalysis.CallShares(r))).Where(x => x.Shares.Count > 0).ToList();
        if (shares.Count > 0)
            charts.Add(("calls", "Member call shares", "Share of each collaboration's inner calls that went to each member (routers and cascades show where queries went)",
                Charts.Shares(shares.Select(s => (s.Name, s.Shares)).ToList(), "Share of inner calls per member")));

        var curves = new List<(string, IReadOnlyList<(double, double, string?)>)>();
        string curveAxis = "cost";
        foreach (var r in runs)
            if (RunAnalysis.QualityCost(r, out var axis) is { } pts) { curves.Add((r.Name, pts)); curveAxis = axis; }
        if (curves.Count > 0)
            charts.Add(("curves", "Quality-cost curves", "Score against cost of each operating point a router or cascade recorded (its sweep in summary.json)",
                Charts.Curves(curves, curveAxis)));

        double[,]? agreement = null;
        if (runs.Count > 1)
        {
            agreement = new double[runs.Count, runs.Count];
            for (int i = 0; i < runs.Count; i++)
                for (int j = 0; j < runs.Count; j++) agreement[i, j] = i == j ? 1 : RunAnalysis.Agreement(runs[i], runs[j]);
            charts.Add(("agreement", "Agreement between runs", "Share of the items both runs answered on which they gave the same answer",
                Charts.Agreement(runs.Select(r => r.Name).ToList(), agreement)));
        }

        var full = Path.GetFullPath(outDir);
        var files = Path.Combine(full, FilesFolder);
        Directory.CreateDirectory(files);
        foreach (var c in charts) File.WriteAllBytes(Path.Combine(files, c.Id + ".png"), c.Png);

        var html = Html(task, split, runs, domains, oracle, charts, shares, agreement, costNote);
        var md = Markdown(task, split, runs, domains, oracle, charts, shares, costNote);
        var htmlPath = Path.Combine(full, "report.html");
        var mdPath = Path.Combine(full, "report.md");
        OutputPaths.WriteAtomically(htmlPath, html);
        OutputPaths.WriteAtomically(mdPath, md);
        return new ReportFiles(htmlPath, mdPath, charts.Count);
    }

    private static string F(double v) => v.ToString("0.000", CultureInfo.InvariantCulture);

    private static IEnumerable<string[]> Rows(IReadOnlyList<RunResults> runs, IReadOnlyList<string> domains) => runs.Select(r =>
    {
        var s = r.Summary;
        var row = new List<string>
        {
            r.Name, s.Method, F(s.Score), s.Ci is { } ci ? $"[{F(ci.Low)}, {F(ci.High)}]" : "-", $"{s.N}/{s.Total}", s.Errors.ToString(CultureInfo.InvariantCulture),
        };
        row.AddRange(domains.Select(d => s.Groups?.TryGetValue(d, out var g) == true ? F(g.Score) : "-"));
        row.Add($"{s.InputTokens}/{s.OutputTokens}");
        row.Add(s.Cost is { } c ? c.ToString("0.######", CultureInfo.InvariantCulture) : "-");
        row.Add(s.Cache is { } cc ? $"{cc.Hits}/{cc.Misses}" : "-");
        row.Add(s.WallSeconds.ToString("0.0", CultureInfo.InvariantCulture));
        return row.ToArray();
    });

    private static string[] Header(IReadOnlyList<string> domains) =>
        [.. new[] { "run", "method", "score", "95% CI", "n", "errors" }, .. domains, "tokens in/out", "cost", "cache hit/miss", "seconds"];

    private static string Html(string task, string split, IReadOnlyList<RunResults> runs, IReadOnlyList<string> domains,
        (double Score, int N, IReadOnlyList<string> Runs)? oracle, IReadOnlyList<(string Id, string Title, string Caption, byte[] Png)> charts,
        IReadOnlyList<(string Name, IReadOnlyDictionary<string, double> Shares)> shares, double[,]? agreement, string costNote)
    {
        static string E(string s) => WebUtility.HtmlEncode(s);
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Consort report: ").Append(E(task)).Append("</title>\n<style>")
          .Append("body{font-family:system-ui,-apple-system,'DejaVu Sans',sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}")
          .Append("table{border-collapse:collapse;margin:1rem 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}")
          .Append("th:first-child,td:first-child,td:nth-child(2){text-align:left}th{background:#f3f3f3}tr.best td{font-weight:bold;background:#eef8ee}")
          .Append("figure{margin:1.5rem 0}figure img{max-width:100%;border:1px solid #ddd}figcaption{color:#555;font-size:14px}.err{color:#b00}.note{color:#555}")
          .Append("</style></head>\n<body>\n");
        sb.Append("<h1>").Append(E(task)).Append(" (").Append(E(split)).Append(")</h1>\n");
        sb.Append("<p class=\"note\">").Append(runs.Count).Append(" run(s), generated by <code>consort report</code> on ")
          .Append(DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture)).Append(" UTC.</p>\n");
        sb.Append("<table id=\"runs\"><thead><tr>");
        foreach (var h in Header(domains)) sb.Append("<th>").Append(E(h)).Append("</th>");
        sb.Append("</tr></thead><tbody>\n");
        double best = runs.Max(r => r.Summary.Score);
        foreach (var (row, run) in Rows(runs, domains).Zip(runs))
        {
            sb.Append(run.Summary.Score == best ? "<tr class=\"best\">" : "<tr>");
            for (int i = 0; i < row.Length; i++)
                sb.Append(i == 5 && run.Summary.Errors > 0 ? "<td class=\"err\">" : "<td>").Append(E(row[i])).Append("</td>");
            sb.Append("</tr>\n");
        }
        sb.Append("</tbody></table>\n");
        foreach (var r in runs.Where(r => r.Summary.FirstError is not null))
            sb.Append("<p class=\"err\">").Append(E(r.Name)).Append(": ").Append(r.Summary.Errors).Append(" failed item(s); first: ").Append(E(r.Summary.FirstError!)).Append("</p>\n");
        if (oracle is { } o)
            sb.Append("<p><b>Oracle</b>: ").Append(F(o.Score)).Append(" of ").Append(o.N).Append(" items are solved by at least one of ")
              .Append(E(string.Join(", ", o.Runs))).Append(" (the best a perfect router over them could do).</p>\n");
        if (costNote.Length > 0) sb.Append("<p class=\"note\">").Append(E(costNote)).Append("</p>\n");
        foreach (var c in charts)
        {
            sb.Append("<figure id=\"chart-").Append(c.Id).Append("\"><h2>").Append(E(c.Title)).Append("</h2><img alt=\"").Append(E(c.Title))
              .Append("\" src=\"data:image/png;base64,").Append(Convert.ToBase64String(c.Png)).Append("\"><figcaption>").Append(E(c.Caption)).Append("</figcaption></figure>\n");
            if (c.Id == "calls")
            {
                sb.Append("<table><thead><tr><th>run</th><th>member</th><th>share of calls</th><th>answered</th></tr></thead><tbody>\n");
                foreach (var (name, sh) in shares)
                {
                    var answered = runs.First(r => r.Name == name).Summary.AnsweredBy;
                    foreach (var (m, v) in sh)
                        sb.Append("<tr><td>").Append(E(name)).Append("</td><td>").Append(E(m)).Append("</td><td>").Append(v.ToString("P1", CultureInfo.InvariantCulture))
                          .Append("</td><td>").Append(answered?.TryGetValue(m, out var a) == true ? a.ToString(CultureInfo.InvariantCulture) : "-").Append("</td></tr>\n");
                }
                sb.Append("</tbody></table>\n");
            }
        }
        // The page marks itself when every chart decoded, so a headless browser check can tell a broken image.
        sb.Append("<script>window.addEventListener('load',()=>{const imgs=[...document.images];")
          .Append("document.body.dataset.charts=imgs.length;document.body.dataset.chartsOk=imgs.filter(i=>i.complete&&i.naturalWidth>0).length;});</script>\n");
        sb.Append("</body></html>\n");
        return sb.ToString();
    }

    private static string Markdown(string task, string split, IReadOnlyList<RunResults> runs, IReadOnlyList<string> domains,
        (double Score, int N, IReadOnlyList<string> Runs)? oracle, IReadOnlyList<(string Id, string Title, string Caption, byte[] Png)> charts,
        IReadOnlyList<(string Name, IReadOnlyDictionary<string, double> Shares)> shares, string costNote)
    {
        static string Cell(string s) => s.Replace("|", "\\|");
        var sb = new StringBuilder();
        sb.Append("# ").Append(task).Append(" (").Append(split).Append(")\n\n");
        var header = Header(domains);
        sb.Append("| ").Append(string.Join(" | ", header.Select(Cell))).Append(" |\n");
        sb.Append("|").Append(string.Concat(header.Select((_, i) => i < 2 ? " --- |" : " ---: |"))).Append('\n');
        foreach (var row in Rows(runs, domains)) sb.Append("| ").Append(string.Join(" | ", row.Select(Cell))).Append(" |\n");
        sb.Append('\n');
        foreach (var r in runs.Where(r => r.Summary.FirstError is not null))
            sb.Append("- **").Append(r.Name).Append("**: ").Append(r.Summary.Errors).Append(" failed item(s); first: ").Append(r.Summary.FirstError).Append('\n');
        if (oracle is { } o)
            sb.Append("\n**Oracle**: ").Append(F(o.Score)).Append(" of ").Append(o.N).Append(" items are solved by at least one of ").Append(string.Join(", ", o.Runs)).Append(".\n");
        if (costNote.Length > 0) sb.Append('\n').Append(costNote).Append('\n');
        foreach (var c in charts)
        {
            sb.Append("\n## ").Append(c.Title).Append("\n\n![").Append(c.Title).Append("](").Append(FilesFolder).Append('/').Append(c.Id).Append(".png)\n\n").Append(c.Caption).Append(".\n");
            if (c.Id == "calls")
            {
                sb.Append("\n| run | member | share of calls |\n| --- | --- | ---: |\n");
                foreach (var (name, sh) in shares)
                    foreach (var (m, v) in sh) sb.Append("| ").Append(name).Append(" | ").Append(m).Append(" | ").Append(v.ToString("P1", CultureInfo.InvariantCulture)).Append(" |\n");
            }
        }
        return sb.ToString();
    }
}
