using System.Numerics;
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
            int j = 0;
            if (Vector.IsHardwareAccelerated)
            {
                // The scalar loop's float operations per lane; the selects keep Math.Max's and Math.Clamp's NaN handling.
                int vc = Vector<float>.Count;
                var vt = new Vector<float>(t); var tiny = new Vector<float>(1e-6f);
                var zero = Vector<float>.Zero; var one = Vector<float>.One;
                for (; j <= o.Length - vc; j += vc)
                {
                    var va = new Vector<float>(a.Slice(j, vc)); var vb = new Vector<float>(b.Slice(j, vc));
                    var dist = Vector.Abs(va - vb);
                    var w = vt / Vector.ConditionalSelect(Vector.LessThan(dist, tiny), tiny, dist);
                    w = Vector.ConditionalSelect(Vector.LessThan(w, zero), zero, Vector.ConditionalSelect(Vector.GreaterThan(w, one), one, w));
                    (w * vb + (one - w) * va).CopyTo(o.Slice(j, vc));
                }
            }
            for (; j < o.Length; j++)
            {
                float w = Math.Clamp(t / Math.Max(MathF.Abs(a[j] - b[j]), 1e-6f), 0f, 1f);
                o[j] = w * b[j] + (1 - w) * a[j];
            }
        });
    }
}
