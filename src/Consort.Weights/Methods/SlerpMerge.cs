using Consort.Weights.Engine;

namespace Consort.Weights.Methods;

/// <summary>
/// SLERP between base_model (t = 0) and one other model (t = 1), per tensor, as mergekit does it: the angle comes
/// from the normalized flattened tensors; when they are nearly parallel (|cos| &gt; 0.9995) it falls back to lerp.
/// </summary>
public sealed class SlerpMerge : IMergeMethod
{
    /// <summary>|cos| above which vectors count as parallel.</summary>
    public const double DotThreshold = 0.9995;

    /// <inheritdoc />
    public string Name => "slerp";
    /// <inheritdoc />
    public bool RequiresBase => true;
    /// <inheritdoc />
    public int MinModels => 1;
    /// <inheritdoc />
    public int MaxModels => 1;
    /// <inheritdoc />
    public IReadOnlyList<MergeParameterSpec> Parameters { get; } = [new("t", null, false) { Min = 0, Max = 1 }];

    /// <summary>The coefficients (s0, s1) applied to v0 and v1 for interpolation factor t.</summary>
    public static (double S0, double S1) Coefficients(double t, double dot, double norm0, double norm1, double eps = 1e-8)
    {
        double n0 = norm0 > eps ? norm0 : 1, n1 = norm1 > eps ? norm1 : 1;
        double cos = dot / (n0 * n1);
        if (Math.Abs(cos) > DotThreshold) return (1 - t, t);
        double theta0 = Math.Acos(cos), sin0 = Math.Sin(theta0), thetaT = theta0 * t;
        return (Math.Sin(theta0 - thetaT) / sin0, Math.Sin(thetaT) / sin0);
    }

    /// <inheritdoc />
    public void Merge(TensorJob job)
    {
        double t = job.Global("t", null);
        int[] sources = [job.BaseSource, job.SourceOf(job.NonBaseModels().First())];
        // The angle of the whole flattened tensors first, then s0·v0 + s1·v1.
        var g = GramPass.Compute(job, sources);
        var (s0, s1) = Coefficients(t, g[0, 1], Math.Sqrt(g[0, 0]), Math.Sqrt(g[1, 1]));
        GramPass.Emit(job, sources, [s0, s1]);
    }
}
