using System.Numerics.Tensors;
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
        int other = job.SourceOf(job.NonBaseModels().First());
        var a = job.Buffer(0); var b = job.Buffer(1);
        double dot = 0, n0 = 0, n1 = 0;
        foreach (var (s, n) in job.Chunks())
        {
            job.Read(job.BaseSource, s, a.AsSpan(0, n));
            job.Read(other, s, b.AsSpan(0, n));
            for (int j = 0; j < n; j++) { dot += (double)a[j] * b[j]; n0 += (double)a[j] * a[j]; n1 += (double)b[j] * b[j]; }
        }
        var (s0, s1) = Coefficients(t, dot, Math.Sqrt(n0), Math.Sqrt(n1));
        foreach (var (s, n) in job.Chunks())
        {
            var x = a.AsSpan(0, n); var y = b.AsSpan(0, n);
            job.Read(job.BaseSource, s, x);
            job.Read(other, s, y);
            TensorPrimitives.Multiply(x, (float)s0, x);
            TensorPrimitives.MultiplyAdd(y, (float)s1, x, x);
            job.Emit(x);
        }
    }
}
