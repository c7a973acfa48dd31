using Consort.Weights.Engine;

namespace Consort.Weights.Methods;

/// <summary>
/// mergekit's <c>multislerp</c>: barycentric interpolation on the hypersphere. The models (or, with a base_model,
/// their task vectors), each scaled to unit length, are averaged with their weights; the unit vectors are projected
/// onto the tangent space at that mean, interpolated there, mapped back with the exponential map, and scaled by the
/// weighted mean of the norms. Everything is a linear combination of the inputs, so it is computed from their Gram
/// matrix (one pass) and written in a second pass.
/// </summary>
public sealed class MultiSlerpMerge : IMergeMethod
{
    /// <inheritdoc />
    public string Name => "multislerp";
    /// <inheritdoc />
    public bool RequiresBase => false;
    /// <inheritdoc />
    public bool OptionalBase => true;
    /// <inheritdoc />
    public int MinModels => 2;
    /// <inheritdoc />
    public int MaxModels => int.MaxValue;
    /// <inheritdoc />
    public IReadOnlyList<MergeParameterSpec> Parameters { get; } =
        [new("weight", null, true) { Min = 0 }, new("normalize_weights", true, false), new("eps", 1e-8, false) { Min = 0 }];

    /// <summary>
    /// The coefficients on the vectors for weights <paramref name="w"/> given their Gram matrix (mergekit's algorithm
    /// in coefficient space); null when the weighted mean of the unit vectors vanishes for more than two vectors.
    /// </summary>
    public static double[]? Coefficients(double[,] gram, double[] w, bool normalizeWeights, double eps)
    {
        int k = w.Length;
        if (normalizeWeights) { double s = w.Sum(); w = w.Select(x => x / s).ToArray(); }
        var norms = Enumerable.Range(0, k).Select(i => Math.Sqrt(Math.Max(0, gram[i, i]))).ToArray();
        var unit = norms.Select(n => 1 / (n + eps)).ToArray(); // unit_i = v_i · unit[i]
        var mean = Enumerable.Range(0, k).Select(i => w[i] * unit[i]).ToArray();
        double meanNorm = Math.Sqrt(Math.Max(0, GramPass.Inner(gram, mean, mean)));
        if (meanNorm < eps) return k == 2 ? [w[0], w[1]] : null; // two antipodal vectors: linear interpolation
        for (int i = 0; i < k; i++) mean[i] /= meanNorm;
        // tangent_i = unit_i − ⟨unit_i, mean⟩ mean; their weighted sum, as coefficients.
        var tangent = new double[k];
        for (int i = 0; i < k; i++)
        {
            double dot = 0;
            for (int j = 0; j < k; j++) dot += unit[i] * gram[i, j] * mean[j];
            tangent[i] += w[i] * unit[i];
            for (int j = 0; j < k; j++) tangent[j] -= w[i] * dot * mean[j];
        }
        double tn = Math.Sqrt(Math.Max(0, GramPass.Inner(gram, tangent, tangent))) + eps;
        double avgNorm = Enumerable.Range(0, k).Sum(i => norms[i] * w[i]);
        return Enumerable.Range(0, k).Select(i => (mean[i] * Math.Cos(tn) + tangent[i] * Math.Sin(tn) / tn) * avgNorm).ToArray();
    }

    /// <inheritdoc />
    public void Validate(Config.MergeConfig config)
    {
        if (config.Models.Where(m => m.Path != config.BaseModel).All(m => m.Parameters.GetValueOrDefault("weight")?.Values().All(v => v is 0.0) == true)
            && config.Parameters.GetValueOrDefault("normalize_weights")?.Values().All(v => v is false or 0.0) != true)
            throw new ConfigException($"merge_method '{Name}': every weight is 0, so the normalized weights are undefined; give at least one model a positive weight");
    }

    /// <inheritdoc />
    public void Merge(TensorJob job)
    {
        var models = job.NonBaseModels().ToArray();
        var sources = models.Select(job.SourceOf).ToArray();
        var w = models.Select(m => job.ModelParam(m, "weight", null)).ToArray();
        bool normalize = job.Flag("normalize_weights", true);
        if (normalize && w.Sum() <= 0) throw new ConfigException($"merge_method '{Name}': the weights for tensor {job.Name} sum to 0 (normalize_weights needs a positive sum)");
        var gram = GramPass.Compute(job, sources, job.BaseSource);
        var c = Coefficients(gram, w, normalize, job.Global("eps", 1e-8))
            ?? throw new ConsortException($"merge_method '{Name}': tensor {job.Name}: the weighted mean of the unit vectors is zero (antipodal models with balancing weights); use other weights");
        GramPass.Emit(job, sources, c, job.BaseSource);
    }
}
