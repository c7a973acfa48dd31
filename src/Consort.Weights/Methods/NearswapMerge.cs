using Consort.Weights.Engine;

namespace Consort.Weights.Methods;

/// <summary>
/// mergekit's nearswap: moves the base toward the other model where they are already close. Per element,
/// w = clamp(t / max(|base − other|, 1e-6), 0, 1) and the result is w·other + (1 − w)·base.
/// </summary>
public sealed class NearswapMerge : IMergeMethod
{
    /// <inheritdoc />
    public string Name => "nearswap";
    /// <inheritdoc />
    public bool RequiresBase => true;
    /// <inheritdoc />
    public int MinModels => 1;
    /// <inheritdoc />
    public int MaxModels => 1;
    /// <inheritdoc />
    public IReadOnlyList<MergeParameterSpec> Parameters { get; } = [new("t", null, false) { Min = 0 }];

    /// <inheritdoc />
    public void Merge(TensorJob job)
    {
        float t = (float)job.Global("t", null);
        int other = job.SourceOf(job.NonBaseModels().First());
        BlockPasses.Map(job, [job.BaseSource, other], 1, block =>
        {
            var a = block.In(0); var b = block.In(1); var o = block.Out;
            for (int j = 0; j < o.Length; j++)
            {
                float w = Math.Clamp(t / Math.Max(MathF.Abs(a[j] - b[j]), 1e-6f), 0f, 1f);
                o[j] = w * b[j] + (1 - w) * a[j];
            }
        });
    }
}
