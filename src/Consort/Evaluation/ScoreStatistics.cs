namespace Consort.Evaluation;

/// <summary>A 95% confidence interval of a mean score.</summary>
/// <param name="Low">Lower bound.</param>
/// <param name="High">Upper bound.</param>
/// <param name="Method">"wilson" (0/1 scores) or "normal".</param>
public sealed record ConfidenceInterval(double Low, double High, string Method);

/// <summary>Mean and confidence interval of per-item scores.</summary>
public static class ScoreStatistics
{
    private const double Z95 = 1.959963984540054;

    /// <summary>
    /// 95% interval of the mean: Wilson's score interval when every score is 0 or 1, else the normal
    /// approximation (mean ± 1.96 · s/√n, clipped to [0, 1]). Null for no scores.
    /// </summary>
    public static ConfidenceInterval? Interval(IReadOnlyList<double> scores)
    {
        int n = scores.Count;
        if (n == 0) return null;
        if (scores.All(s => s is 0 or 1)) return Wilson(scores.Count(s => s == 1), n);
        double mean = scores.Average();
        double var = n > 1 ? scores.Sum(s => (s - mean) * (s - mean)) / (n - 1) : 0;
        double half = Z95 * Math.Sqrt(var / n);
        return new ConfidenceInterval(Math.Max(0, mean - half), Math.Min(1, mean + half), "normal");
    }

    /// <summary>Wilson score interval for <paramref name="successes"/> out of <paramref name="n"/> at 95%.</summary>
    public static ConfidenceInterval Wilson(int successes, int n)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n));
        double p = (double)successes / n, z2 = Z95 * Z95;
        double denom = 1 + z2 / n;
        double center = (p + z2 / (2 * n)) / denom;
        double half = Z95 / denom * Math.Sqrt(p * (1 - p) / n + z2 / (4.0 * n * n));
        return new ConfidenceInterval(Math.Max(0, center - half), Math.Min(1, center + half), "wilson");
    }
}
