namespace Consort.Evaluation;

/// <summary>A paired comparison of two runs on the same items.</summary>
/// <param name="N">Items both runs scored.</param>
/// <param name="MeanA">Mean score of A on them.</param>
/// <param name="MeanB">Mean score of B on them.</param>
/// <param name="Difference">B − A.</param>
/// <param name="Low">Lower bound of the 95% paired bootstrap interval of the difference.</param>
/// <param name="High">Upper bound.</param>
/// <param name="OnlyA">0/1 scores: items A solved and B did not (McNemar's b).</param>
/// <param name="OnlyB">0/1 scores: items B solved and A did not (McNemar's c).</param>
/// <param name="McNemarP">Exact two-sided McNemar p-value (binomial on the discordant pairs); null when scores are not 0/1.</param>
public sealed record PairedComparison(int N, double MeanA, double MeanB, double Difference, double Low, double High, int? OnlyA, int? OnlyB, double? McNemarP);

/// <summary>Paired significance of score differences: the paired bootstrap and McNemar's exact test.</summary>
public static class PairedStatistics
{
    /// <summary>Compares B with A on paired scores (same items, same order).</summary>
    /// <param name="a">Scores of A.</param>
    /// <param name="b">Scores of B.</param>
    /// <param name="resamples">Bootstrap resamples.</param>
    /// <param name="seed">Seed of the resampling (results are reproducible).</param>
    public static PairedComparison Compare(IReadOnlyList<double> a, IReadOnlyList<double> b, int resamples = 10_000, int seed = 42)
    {
        if (a.Count != b.Count) throw new ArgumentException("paired scores must have the same length");
        int n = a.Count;
        if (n == 0) return new PairedComparison(0, 0, 0, 0, 0, 0, null, null, null);
        var d = new double[n];
        for (int i = 0; i < n; i++) d[i] = b[i] - a[i];
        double mean = d.Average();
        var (low, high) = BootstrapInterval(d, resamples, seed);
        bool binary = a.Concat(b).All(s => s is 0 or 1);
        int? onlyA = null, onlyB = null;
        double? p = null;
        if (binary)
        {
            onlyA = Enumerable.Range(0, n).Count(i => a[i] == 1 && b[i] == 0);
            onlyB = Enumerable.Range(0, n).Count(i => a[i] == 0 && b[i] == 1);
            p = McNemarExact(onlyA.Value, onlyB.Value);
        }
        return new PairedComparison(n, a.Average(), b.Average(), mean, low, high, onlyA, onlyB, p);
    }

    /// <summary>95% percentile interval of the mean of <paramref name="d"/> over bootstrap resamples of the items.</summary>
    public static (double Low, double High) BootstrapInterval(IReadOnlyList<double> d, int resamples = 10_000, int seed = 42)
    {
        int n = d.Count;
        var rng = new Random(seed);
        var means = new double[resamples];
        for (int r = 0; r < resamples; r++)
        {
            double sum = 0;
            for (int i = 0; i < n; i++) sum += d[rng.Next(n)];
            means[r] = sum / n;
        }
        Array.Sort(means);
        return (Percentile(means, 0.025), Percentile(means, 0.975));
    }

    private static double Percentile(double[] sorted, double q)
    {
        double pos = q * (sorted.Length - 1);
        int lo = (int)Math.Floor(pos), hi = (int)Math.Ceiling(pos);
        return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
    }

    /// <summary>Exact two-sided McNemar p-value: P(X ≤ min(b, c)) · 2 for X ~ Binomial(b + c, 1/2), capped at 1.</summary>
    public static double McNemarExact(int b, int c)
    {
        int n = b + c;
        if (n == 0) return 1;
        int k = Math.Min(b, c);
        double logHalfN = n * Math.Log(0.5);
        double sum = 0;
        for (int i = 0; i <= k; i++) sum += Math.Exp(LogChoose(n, i) + logHalfN);
        return Math.Min(1, 2 * sum);
    }

    private static double LogChoose(int n, int k)
    {
        double s = 0;
        for (int i = 1; i <= k; i++) s += Math.Log(n - k + i) - Math.Log(i);
        return s;
    }
}
