using ScottPlot;

namespace Consort.Cli.Reports;

/// <summary>The report's charts, drawn with ScottPlot 5 as PNG bytes.</summary>
public static class Charts
{
    /// <summary>Chart size in pixels.</summary>
    public const int Width = 900, Height = 460;

    /// <summary>Score per run as bars with their 95% intervals.</summary>
    public static byte[] Scores(IReadOnlyList<(string Name, double Score, double Low, double High)> runs, double? oracle)
    {
        var plt = NewPlot("Score per run (95% interval)", "", "score");
        var positions = Enumerable.Range(0, runs.Count).Select(i => (double)i).ToArray();
        var bars = plt.Add.Bars(positions, runs.Select(r => r.Score).ToArray());
        foreach (var bar in bars.Bars) bar.Size = 0.6;
        var err = new ScottPlot.Plottables.ErrorBar(positions, runs.Select(r => r.Score).ToArray(), null, null,
            runs.Select(r => Math.Max(0, r.High - r.Score)).ToArray(), runs.Select(r => Math.Max(0, r.Score - r.Low)).ToArray())
        {
            LineWidth = 2, CapSize = 8, Color = Colors.Black,
        };
        plt.Add.Plottable(err);
        if (oracle is { } o)
        {
            var line = plt.Add.HorizontalLine(o, 2, Colors.DarkGreen, LinePattern.Dashed);
            line.LegendText = $"oracle {o:F3}";
            plt.ShowLegend(Alignment.UpperRight);
        }
        Labels(plt, runs.Select(r => r.Name).ToList());
        plt.Axes.SetLimitsY(0, 1.05);
        return Png(plt);
    }

    /// <summary>Score against a cost axis (tokens per item or cost), each run a labelled point, the Pareto front joined.</summary>
    public static byte[] Tradeoff(IReadOnlyList<(string Name, double X, double Score)> runs, IReadOnlyList<int> front, string xLabel, string title)
    {
        var plt = NewPlot(title, xLabel, "score");
        var all = plt.Add.Scatter(runs.Select(r => r.X).ToArray(), runs.Select(r => r.Score).ToArray(), Colors.SteelBlue);
        all.LineWidth = 0;
        all.MarkerSize = 9;
        all.LegendText = "runs";
        if (front.Count > 0)
        {
            var f = plt.Add.Scatter(front.Select(i => runs[i].X).ToArray(), front.Select(i => runs[i].Score).ToArray(), Colors.OrangeRed);
            f.LineWidth = 2;
            f.MarkerSize = 12;
            f.LegendText = "Pareto front";
        }
        double maxX0 = runs.Count == 0 ? 1 : Math.Max(1e-9, runs.Max(r => r.X));
        for (int i = 0; i < runs.Count; i++)
        {
            var r = runs[i];
            // Runs at (nearly) the same point get their labels stacked instead of printed over each other.
            int earlier = runs.Take(i).Count(o => Math.Abs(o.X - r.X) < maxX0 * 0.06 && Math.Abs(o.Score - r.Score) < 0.04);
            var t = plt.Add.Text(r.Name, r.X, r.Score);
            t.LabelStyle.FontSize = 12;
            t.OffsetX = 6;
            t.OffsetY = -6 + 15 * earlier;
        }
        plt.ShowLegend(Alignment.LowerRight);
        double maxX = runs.Count == 0 ? 1 : runs.Max(r => r.X);
        plt.Axes.SetLimits(0, maxX <= 0 ? 1 : maxX * 1.25, 0, 1.05);
        return Png(plt);
    }

    /// <summary>Per-domain score of each run, grouped by domain.</summary>
    public static byte[] Domains(IReadOnlyList<string> runs, IReadOnlyList<string> domains, Func<int, int, double?> score) =>
        GroupedBars("Score per domain", "score", runs, domains, score);

    /// <summary>Share of inner calls per member, one group of bars per run.</summary>
    public static byte[] Shares(IReadOnlyList<(string Run, IReadOnlyDictionary<string, double> Shares)> runs, string title)
    {
        var members = runs.SelectMany(r => r.Shares.Keys).Distinct().Order(StringComparer.Ordinal).ToList();
        return GroupedBars(title, "share", members, runs.Select(r => r.Run).ToList(),
            (m, r) => runs[r].Shares.TryGetValue(members[m], out var v) ? v : null);
    }

    // One bar per (series, group): groups along the axis, series side by side within a group.
    private static byte[] GroupedBars(string title, string yLabel, IReadOnlyList<string> runs, IReadOnlyList<string> domains, Func<int, int, double?> score)
    {
        var plt = NewPlot(title, "", yLabel);
        double width = 0.8 / Math.Max(1, runs.Count);
        var palette = new ScottPlot.Palettes.Category10();
        for (int r = 0; r < runs.Count; r++)
        {
            var bars = new List<Bar>();
            for (int d = 0; d < domains.Count; d++)
                if (score(r, d) is { } s)
                    bars.Add(new Bar { Position = d - 0.4 + width * (r + 0.5), Value = s, Size = width * 0.9, FillColor = palette.GetColor(r) });
            var bp = plt.Add.Bars(bars);
            bp.LegendText = runs[r];
        }
        Labels(plt, domains);
        plt.Axes.SetLimitsY(0, 1.15);
        plt.ShowLegend(Alignment.UpperRight);
        return Png(plt);
    }

    /// <summary>Agreement between runs as a grid of shaded cells (darker: more agreement) with the values written in.</summary>
    public static byte[] Agreement(IReadOnlyList<string> runs, double[,] values)
    {
        var plt = NewPlot("Agreement between runs", "", "");
        int n = runs.Count;
        var colormap = new ScottPlot.Colormaps.Viridis();
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
            {
                double v = values[i, j];
                double y = n - 1 - i; // the first run on top
                var cell = plt.Add.Rectangle(j - 0.5, j + 0.5, y - 0.5, y + 0.5);
                cell.FillColor = double.IsNaN(v) ? Colors.LightGray : colormap.GetColor(v);
                cell.LineColor = Colors.White;
                var t = plt.Add.Text(double.IsNaN(v) ? "-" : v.ToString("0.00"), j, y);
                t.LabelStyle.FontSize = 14;
                t.LabelStyle.ForeColor = v > 0.6 ? Colors.Black : Colors.White;
                t.Alignment = Alignment.MiddleCenter;
            }
        var positions = Enumerable.Range(0, n).Select(i => (double)i).ToArray();
        plt.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(positions, runs.ToArray());
        plt.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(positions.Select(p => n - 1 - p).ToArray(), runs.ToArray());
        if (n > 4 || runs.Any(r => r.Length > 8)) Rotate(plt, runs);
        plt.Axes.SetLimits(-0.5, n - 0.5, -0.5, n - 0.5);
        return Png(plt, Math.Max(640, 90 * n + 260), Math.Max(460, 70 * n + 200));
    }

    /// <summary>Quality-cost curves of runs that recorded one (router sweeps).</summary>
    public static byte[] Curves(IReadOnlyList<(string Run, IReadOnlyList<(double X, double Y, string? Label)> Points)> curves, string xLabel)
    {
        var plt = NewPlot("Quality-cost curves", xLabel, "score");
        foreach (var (run, points) in curves)
        {
            var ordered = points.OrderBy(p => p.X).ToList();
            var s = plt.Add.Scatter(ordered.Select(p => p.X).ToArray(), ordered.Select(p => p.Y).ToArray());
            s.LegendText = run;
            s.LineWidth = 2;
            s.MarkerSize = 6;
        }
        plt.ShowLegend(Alignment.LowerRight);
        return Png(plt);
    }

    private static Plot NewPlot(string title, string x, string y)
    {
        var plt = new Plot();
        plt.Title(title);
        if (x.Length > 0) plt.XLabel(x);
        if (y.Length > 0) plt.YLabel(y);
        return plt;
    }

    private static void Labels(Plot plt, IReadOnlyList<string> labels)
    {
        var positions = Enumerable.Range(0, labels.Count).Select(i => (double)i).ToArray();
        plt.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(positions, labels.ToArray());
        if (labels.Sum(l => l.Length + 2) * 8 > Width - 100) Rotate(plt, labels);
        plt.Axes.SetLimitsX(-0.6, labels.Count - 0.4);
    }

    // Labels that do not fit side by side are slanted, with room made below the axis for the longest (as ScottPlot's cookbook does).
    private static void Rotate(Plot plt, IReadOnlyList<string> labels)
    {
        plt.Axes.Bottom.TickLabelStyle.Rotation = 45;
        plt.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleLeft;
        if (plt.Axes.Bottom is ScottPlot.AxisPanels.XAxisBase axis)
            axis.MinimumSize = 20 + 6f * labels.Max(l => l.Length);
    }

    private static byte[] Png(Plot plt, int width = Width, int height = Height) => plt.GetImageBytes(width, height, ImageFormat.Png);
}
