using System.Numerics.Tensors;
using Consort.Weights.Engine;

namespace Consort.Weights.Methods;

/// <summary>
/// ExPO (model extrapolation, Zheng et al. 2024): w = w_t + alpha (w_t - w_s), with base_model the weaker w_s
/// (e.g. the SFT checkpoint) and the one model the stronger w_t. Not a mergekit method; alpha defaults to 0.5.
/// </summary>
public sealed class ExpoMerge : IMergeMethod
{
    /// <inheritdoc />
    public string Name => "expo";
    /// <inheritdoc />
    public bool RequiresBase => true;
    /// <inheritdoc />
    public int MinModels => 1;
    /// <inheritdoc />
    public int MaxModels => 1;
    /// <inheritdoc />
    public IReadOnlyList<MergeParameterSpec> Parameters { get; } = [new("alpha", 0.5, false)];

    /// <inheritdoc />
    public void Merge(TensorJob job)
    {
        float alpha = (float)job.Global("alpha", 0.5);
        int other = job.SourceOf(job.NonBaseModels().First());
        var ws = job.Buffer(0); var wt = job.Buffer(1);
        foreach (var (s, n) in job.Chunks())
        {
            var a = ws.AsSpan(0, n); var b = wt.AsSpan(0, n);
            job.Read(job.BaseSource, s, a);
            job.Read(other, s, b);
            // (1 + alpha) w_t - alpha w_s
            TensorPrimitives.Multiply(a, -alpha, a);
            TensorPrimitives.MultiplyAdd(b, 1 + alpha, a, a);
            job.Emit(a);
        }
    }
}
