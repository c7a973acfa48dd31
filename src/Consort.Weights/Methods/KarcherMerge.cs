using Consort.Weights.Engine;

namespace Consort.Weights.Methods;

/// <summary>
/// mergekit's <c>karcher</c>: the Karcher (Riemannian) mean of the models' tensors on the unit hypersphere, with equal
/// weights, scaled by the mean of their norms. The base_model, when given, is one of the averaged models (as in
/// mergekit, which gathers it with the others). The fixed-point iteration (at most <c>max_iter</c> steps, stopping
/// when the tangent step is below <c>tol</c>) runs on the coefficients of the inputs, from their Gram matrix.
/// </summary>
public sealed class KarcherMerge : IMergeMethod
{
    /// <inheritdoc />
    public string Name => "karcher";
    /// <inheritdoc />
    public bool RequiresBase => false;
    /// <inheritdoc />
    public int MinModels => 1;
    /// <inheritdoc />
    public int MaxModels => int.MaxValue;
    /// <inheritdoc />
    public IReadOnlyList<MergeParameterSpec> Parameters { get; } =
        [new("max_iter", 10.0, false) { Min = 1, Max = 10_000, Integer = true }, new("tol", 1e-5, false) { Min = 0 }];

    /// <summary>Coefficients on the raw vectors whose combination is the scaled Karcher mean (mergekit's iteration).</summary>
    public static double[] Coefficients(double[,] gram, int maxIter, double tol)
    {
        int k = gram.GetLength(0);
        var norms = Enumerable.Range(0, k).Select(i => Math.Sqrt(Math.Max(0, gram[i, i]))).ToArray();
        var valid = Enumerable.Range(0, k).Where(i => norms[i] > tol).ToArray();
        var result = new double[k];
        if (valid.Length == 0) return result;
        int m = valid.Length;
        // Gram matrix of the valid unit vectors; u is kept as coefficients on them.
        var g = new double[m, m];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < m; j++) g[i, j] = gram[valid[i], valid[j]] / (norms[valid[i]] * norms[valid[j]]);
        double a = 1.0 / m;
        var u = Enumerable.Repeat(a, m).ToArray();
        double nu = Math.Sqrt(Math.Max(0, GramPass.Inner(g, u, u)));
        if (nu < tol) { u = new double[m]; u[0] = 1; }
        else for (int i = 0; i < m; i++) u[i] /= nu;
        for (int iter = 0; iter < maxIter; iter++)
        {
            var t = new double[m];
            for (int i = 0; i < m; i++)
            {
                double dot = 0;
                for (int j = 0; j < m; j++) dot += u[j] * g[j, i];
                dot = Math.Clamp(dot, -1, 1);
                double theta = Math.Acos(dot);
                if (theta < tol) continue;
                double f = a * theta / Math.Sin(theta);
                t[i] += f;
                for (int j = 0; j < m; j++) t[j] -= f * dot * u[j];
            }
            double nt = Math.Sqrt(Math.Max(0, GramPass.Inner(g, t, t)));
            if (nt < tol) break;
            for (int j = 0; j < m; j++) u[j] = Math.Cos(nt) * u[j] + Math.Sin(nt) * t[j] / nt;
            double un = Math.Sqrt(Math.Max(0, GramPass.Inner(g, u, u)));
            if (un > tol) for (int j = 0; j < m; j++) u[j] /= un;
        }
        double scale = norms.Sum() / k; // mean norm over all models, zero ones included
        for (int i = 0; i < m; i++) result[valid[i]] = scale * u[i] / norms[valid[i]];
        return result;
    }

    /// <inheritdoc />
    public void Merge(TensorJob job)
    {
        var sources = (job.BaseSource >= 0 ? new[] { job.BaseSource } : []).Concat(Enumerable.Range(0, job.ModelCount).Select(job.SourceOf)).Distinct().ToArray();
        if (sources.Length == 1) { GramPass.Emit(job, sources, [1.0]); return; } // mergekit returns the one tensor
        var gram = GramPass.Compute(job, sources);
        GramPass.Emit(job, sources, Coefficients(gram, (int)job.Global("max_iter", 10), job.Global("tol", 1e-5)));
    }
}
