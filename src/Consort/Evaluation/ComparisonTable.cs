using System.Globalization;
using System.Text;

namespace Consort.Evaluation;

/// <summary>One row of a comparison table.</summary>
/// <param name="Model">Model name.</param>
/// <param name="Method">Method ("single" for one model).</param>
/// <param name="Score">Mean score.</param>
/// <param name="CiLow">Lower bound of the 95% interval.</param>
/// <param name="CiHigh">Upper bound.</param>
/// <param name="N">Items scored.</param>
/// <param name="Total">Items selected.</param>
/// <param name="InputTokens">Input tokens.</param>
/// <param name="OutputTokens">Output tokens.</param>
/// <param name="Seconds">Wall time of the run in seconds.</param>
/// <param name="Errors">Failed items.</param>
public sealed record ComparisonRow(string Model, string Method, double Score, double CiLow, double CiHigh, int N, int Total,
    long InputTokens, long OutputTokens, double Seconds, int Errors)
{
    /// <summary>"0.812 ± 0.034" style score text (half-width of the interval; asymmetric intervals use the larger side).</summary>
    public string ScoreText => $"{Score.ToString("0.000", CultureInfo.InvariantCulture)} ± {Math.Max(Score - CiLow, CiHigh - Score).ToString("0.000", CultureInfo.InvariantCulture)}";
}

/// <summary>Comparison of several runs on one task: rows for the CLI to render, and a plain-text rendering.</summary>
public sealed class ComparisonTable
{
    /// <summary>Column headers.</summary>
    public static IReadOnlyList<string> Headers { get; } = ["model", "method", "score ± 95% CI", "n", "tokens in/out", "seconds"];

    private ComparisonTable(string task, string split, IReadOnlyList<ComparisonRow> rows)
    {
        Task = task; Split = split; Rows = rows;
    }

    /// <summary>Task name.</summary>
    public string Task { get; }
    /// <summary>Split.</summary>
    public string Split { get; }
    /// <summary>One row per run, in the given order.</summary>
    public IReadOnlyList<ComparisonRow> Rows { get; }

    /// <summary>Builds the table from summaries.</summary>
    public static ComparisonTable From(IReadOnlyList<EvalSummary> summaries)
    {
        var rows = summaries.Select(s => new ComparisonRow(s.Model, s.Method, s.Score, s.Ci?.Low ?? s.Score, s.Ci?.High ?? s.Score,
            s.N, s.Total, s.InputTokens, s.OutputTokens, s.WallSeconds, s.Errors)).ToList();
        return new ComparisonTable(summaries.FirstOrDefault()?.Task ?? "", summaries.FirstOrDefault()?.Split ?? "", rows);
    }

    /// <summary>The cells of each row, as text, matching <see cref="Headers"/>.</summary>
    public IReadOnlyList<string[]> Cells() => Rows.Select(r => new[]
    {
        r.Model,
        r.Method,
        r.ScoreText,
        r.N == r.Total ? r.N.ToString(CultureInfo.InvariantCulture) : $"{r.N}/{r.Total}",
        $"{r.InputTokens.ToString(CultureInfo.InvariantCulture)}/{r.OutputTokens.ToString(CultureInfo.InvariantCulture)}",
        r.Seconds.ToString("0.0", CultureInfo.InvariantCulture),
    }).ToList();

    /// <summary>Plain-text table with aligned columns (for logs and tests).</summary>
    public string Render()
    {
        var cells = Cells();
        var widths = Headers.Select((h, i) => Math.Max(h.Length, cells.Count == 0 ? 0 : cells.Max(c => c[i].Length))).ToArray();
        var sb = new StringBuilder();
        sb.Append(Task).Append(" (").Append(Split).Append(")\n");
        void Line(IReadOnlyList<string> values)
        {
            for (int i = 0; i < values.Count; i++)
            {
                if (i > 0) sb.Append("  ");
                // Numbers right-aligned, names left-aligned.
                sb.Append(i < 2 ? values[i].PadRight(widths[i]) : values[i].PadLeft(widths[i]));
            }
            sb.Append('\n');
        }
        Line(Headers);
        sb.Append(string.Join("  ", widths.Select(w => new string('-', w)))).Append('\n');
        foreach (var c in cells) Line(c);
        return sb.ToString();
    }
}
