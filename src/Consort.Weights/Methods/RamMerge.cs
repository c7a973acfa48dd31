using System.Numerics;
using Consort.Weights.Engine;

namespace Consort.Weights.Methods;

/// <summary>
/// mergekit's <c>ram</c> (Reinforced Agent Merging): an element of a task vector counts when |x − base| &gt; epsilon.
/// Elements changed by one model only are added as they are; elements changed by several are averaged over the
/// models that changed them; untouched elements keep the base.
/// </summary>
public class RamMerge : IMergeMethod
{
    /// <inheritdoc />
    public virtual string Name => "ram";
    /// <inheritdoc />
    public bool RequiresBase => true;
    /// <inheritdoc />
    public int MinModels => 1;
    /// <inheritdoc />
    public int MaxModels => int.MaxValue;
    /// <inheritdoc />
    public virtual IReadOnlyList<MergeParameterSpec> Parameters { get; } = [new("epsilon", 1e-5, false) { Min = 0 }];

    /// <summary>The factor on each model's unique elements (RAM: 1).</summary>
    protected virtual float[] UniqueScales(TensorJob job, int[] sources, float epsilon) => Enumerable.Repeat(1f, sources.Length - 1).ToArray();

    /// <inheritdoc />
    public void Merge(TensorJob job)
    {
        float eps = (float)job.Global("epsilon", 1e-5);
        int[] sources = [job.BaseSource, .. job.NonBaseModels().Select(job.SourceOf)];
        int k = sources.Length - 1;
        var lambda = UniqueScales(job, sources, eps);
        BlockPasses.Map(job, sources, 1, block =>
        {
            var b = block.In(0); var o = block.Out;
            int j = 0;
            if (Vector.IsHardwareAccelerated && k <= MaxVectorModels)
            {
                // The scalar loop's float operations per lane; a select instead of "skip" keeps the sum's bits.
                int vc = Vector<float>.Count;
                var ve = new Vector<float>(eps); var one = Vector<int>.One;
                Span<Vector<float>> d = stackalloc Vector<float>[MaxVectorModels];
                Span<Vector<int>> changed = stackalloc Vector<int>[MaxVectorModels];
                for (; j <= o.Length - vc; j += vc)
                {
                    var vb = new Vector<float>(b.Slice(j, vc));
                    var count = Vector<int>.Zero;
                    for (int i = 0; i < k; i++)
                    {
                        d[i] = new Vector<float>(block.In(i + 1).Slice(j, vc)) - vb;
                        changed[i] = Vector.GreaterThan(Vector.Abs(d[i]), ve);
                        count -= changed[i];
                    }
                    var single = Vector.Equals(count, one);
                    var vcount = Vector.ConvertToSingle(count);
                    var sum = Vector<float>.Zero;
                    for (int i = 0; i < k; i++)
                    {
                        var term = Vector.ConditionalSelect(single, d[i] * new Vector<float>(lambda[i]), d[i] / vcount);
                        sum = Vector.ConditionalSelect(changed[i], sum + term, sum);
                    }
                    (vb + sum).CopyTo(o.Slice(j, vc));
                }
            }
            for (; j < o.Length; j++)
            {
                int count = 0;
                for (int i = 0; i < k; i++) if (MathF.Abs(block.In(i + 1)[j] - b[j]) > eps) count++;
                float sum = 0;
                if (count > 0)
                    for (int i = 0; i < k; i++)
                    {
                        float d = block.In(i + 1)[j] - b[j];
                        if (MathF.Abs(d) <= eps) continue;
                        sum += count == 1 ? d * lambda[i] : d / count;
                    }
                o[j] = b[j] + sum;
            }
        });
    }

    /// <summary>Most models the vectorized loops take (their per-lane state lives on the stack).</summary>
    private const int MaxVectorModels = 16;

    /// <summary>Per model: elements it changes that another model changes too (shared) and that only it changes (unique).</summary>
    protected static (long[] Shared, long[] Unique) Counts(TensorJob job, int[] sources, float eps)
    {
        int k = sources.Length - 1;
        var shared = new long[k]; var unique = new long[k];
        BlockPasses.Scan(job, sources, 1, () => new long[2 * k], (block, part) =>
        {
            var b = block.In(0);
            int j = 0;
            if (Vector.IsHardwareAccelerated && k <= MaxVectorModels)
            {
                // Per-lane counts (a true compare is -1), summed once per block.
                int vc = Vector<float>.Count;
                var ve = new Vector<float>(eps); var one = Vector<int>.One;
                Span<Vector<int>> changed = stackalloc Vector<int>[MaxVectorModels];
                Span<Vector<int>> acc = stackalloc Vector<int>[2 * MaxVectorModels];
                acc.Clear();
                for (; j <= block.Length - vc; j += vc)
                {
                    var vb = new Vector<float>(b.Slice(j, vc));
                    var count = Vector<int>.Zero;
                    for (int i = 0; i < k; i++)
                    {
                        changed[i] = Vector.GreaterThan(Vector.Abs(new Vector<float>(block.In(i + 1).Slice(j, vc)) - vb), ve);
                        count -= changed[i];
                    }
                    var single = Vector.Equals(count, one);
                    for (int i = 0; i < k; i++)
                    {
                        acc[i] += Vector.AndNot(changed[i], single);      // shared: changed here and elsewhere
                        acc[k + i] += changed[i] & single;              // unique
                    }
                }
                for (int i = 0; i < 2 * k; i++) part[i] -= Vector.Sum(acc[i]);
            }
            for (; j < block.Length; j++)
            {
                int count = 0;
                for (int i = 0; i < k; i++) if (MathF.Abs(block.In(i + 1)[j] - b[j]) > eps) count++;
                if (count == 0) continue;
                for (int i = 0; i < k; i++)
                    if (MathF.Abs(block.In(i + 1)[j] - b[j]) > eps) part[count == 1 ? k + i : i]++;
            }
        }, part =>
        {
            for (int i = 0; i < k; i++) { shared[i] += part[i]; unique[i] += part[k + i]; }
        });
        return (shared, unique);
    }
}
