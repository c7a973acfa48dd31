namespace Consort.Methods.Api.Routing;

/// <summary>
/// <c>sw_ranking</c>: RouteLLM's similarity-weighted ranking. Every dev query is a set of "battles" between each
/// pair of members (the one with the higher utility wins; equal utilities tie). For a new query each dev query's
/// battles are weighted by <c>10 · 10^(sim / max_sim)</c> (cosine similarity to the query, as RouteLLM does) and a
/// weighted Bradley-Terry model is fitted (ties count as half a win each); the members' ratings are the
/// prediction, in natural-log odds, so that sigmoid(r_a − r_b) is the probability that a beats b on this query.
/// A small L2 penalty (<c>regularization</c>) keeps ratings finite when one member wins every battle, where
/// RouteLLM's unpenalized fit would diverge.
/// </summary>
public sealed class SimilarityWeightedRouter : Router
{
    private readonly DevMemory _memory;
    private readonly double _regularization;

    private SimilarityWeightedRouter(IReadOnlyList<string> models, DevMemory memory, double regularization) : base(models, memory.Points[0].Length)
    {
        if (!(regularization > 0)) throw new ArgumentOutOfRangeException(nameof(regularization), "sw_ranking: regularization must be > 0");
        _memory = memory; _regularization = regularization;
    }

    /// <summary>Keeps the dev queries and outcomes; the fit happens per query.</summary>
    public static SimilarityWeightedRouter Train(RoutingDataset data, double[][] utility, double regularization = 1e-3) =>
        new(data.Models, DevMemory.From(data, utility), regularization);

    /// <inheritdoc />
    public override string Kind => "sw_ranking";

    /// <summary>RouteLLM's weighting of a dev query with similarity <paramref name="sim"/> given the largest one.</summary>
    public static double Weight(double sim, double maxSim) => maxSim > 0 ? 10 * Math.Pow(10, sim / maxSim) : 1;

    /// <inheritdoc />
    protected override double[] Score(ReadOnlySpan<float> embedding)
    {
        var q = Normalized(embedding);
        var sims = _memory.Points.Select(p => (double)System.Numerics.Tensors.TensorPrimitives.Dot(q, p)).ToArray();
        double max = sims.Max();
        var weights = sims.Select(s => Weight(s, max)).ToArray();
        return FitBradleyTerry(_memory.Utility, weights, Models.Count, _regularization);
    }

    /// <summary>
    /// Weighted Bradley-Terry ratings (natural-log odds) from per-query outcomes: minimizes the weighted mean
    /// logistic loss of every pair plus (λ/2)·|r|², by Newton's method (the problem is convex and small).
    /// </summary>
    public static double[] FitBradleyTerry(IReadOnlyList<double[]> utility, IReadOnlyList<double> weights, int models, double lambda)
    {
        var battles = new List<(int A, int B, double Y, double W)>();
        for (int i = 0; i < utility.Count; i++)
            for (int a = 0; a < models; a++)
                for (int b = a + 1; b < models; b++)
                {
                    double y = utility[i][a] > utility[i][b] ? 1 : utility[i][a] < utility[i][b] ? 0 : 0.5;
                    battles.Add((a, b, y, weights[i]));
                }
        double total = battles.Sum(b => b.W);
        var r = new double[models];
        for (int iter = 0; iter < 100; iter++)
        {
            var g = new double[models];
            var h = new double[models, models];
            for (int k = 0; k < models; k++) { g[k] = lambda * r[k]; h[k, k] = lambda; }
            foreach (var (a, b, y, w) in battles)
            {
                double p = 1 / (1 + Math.Exp(-(r[a] - r[b])));
                double gw = w / total * (p - y), hw = w / total * p * (1 - p);
                g[a] += gw; g[b] -= gw;
                h[a, a] += hw; h[b, b] += hw; h[a, b] -= hw; h[b, a] -= hw;
            }
            var step = Solve(h, g);
            double norm = 0;
            for (int k = 0; k < models; k++) { r[k] -= step[k]; norm += step[k] * step[k]; }
            if (norm < 1e-20) break;
        }
        return r;
    }

    // Gaussian elimination with partial pivoting; the Hessian is positive definite thanks to the penalty.
    private static double[] Solve(double[,] a, double[] b)
    {
        int n = b.Length;
        var m = (double[,])a.Clone(); var x = (double[])b.Clone();
        for (int c = 0; c < n; c++)
        {
            int p = c;
            for (int r = c + 1; r < n; r++) if (Math.Abs(m[r, c]) > Math.Abs(m[p, c])) p = r;
            if (p != c)
            {
                for (int k = 0; k < n; k++) (m[c, k], m[p, k]) = (m[p, k], m[c, k]);
                (x[c], x[p]) = (x[p], x[c]);
            }
            for (int r = c + 1; r < n; r++)
            {
                double f = m[r, c] / m[c, c];
                for (int k = c; k < n; k++) m[r, k] -= f * m[c, k];
                x[r] -= f * x[c];
            }
        }
        for (int c = n - 1; c >= 0; c--)
        {
            double s = x[c];
            for (int k = c + 1; k < n; k++) s -= m[c, k] * x[k];
            x[c] = s / m[c, c];
        }
        return x;
    }

    internal override void Save(RouterState state)
    {
        state.Set("regularization", _regularization);
        _memory.Save(state);
    }

    internal static SimilarityWeightedRouter Restore(IReadOnlyList<string> models, int dim, RouterState s) =>
        new(models, DevMemory.Restore(s, dim, models.Count), s.Double("regularization"));
}
