using System.Numerics.Tensors;
using Consort.Weights.Engine;

namespace Consort.Weights.Methods;

/// <summary>
/// mergekit's <c>nuslerp</c>: SLERP between two models with t = weight₂ / (weight₁ + weight₂) (0.5 when the weights
/// sum to ~0). With a base_model it interpolates the two task vectors and adds the result to the base. By default the
/// whole tensor is one vector (<c>nuslerp_flatten</c>); otherwise each row of the innermost dimension is one, or with
/// <c>nuslerp_row_wise</c> each vector along the first dimension (mergekit's dim 0). Vectors whose sin θ is below 1e-8
/// are interpolated linearly.
/// </summary>
public sealed class NuSlerpMerge : IMergeMethod
{
    /// <inheritdoc />
    public string Name => "nuslerp";
    /// <inheritdoc />
    public bool RequiresBase => false;
    /// <inheritdoc />
    public bool OptionalBase => true;
    /// <inheritdoc />
    public int MinModels => 2;
    /// <inheritdoc />
    public int MaxModels => 2;
    /// <inheritdoc />
    public IReadOnlyList<MergeParameterSpec> Parameters { get; } =
        [new("weight", null, true), new("nuslerp_row_wise", false, false), new("nuslerp_flatten", true, false)];

    /// <summary>The coefficients on v0 and v1 for factor <paramref name="t"/>, given their dot product and norms (mergekit's formula).</summary>
    public static (double S0, double S1) Coefficients(double t, double dot, double norm0, double norm1)
    {
        double cos = Math.Clamp(dot / (Math.Max(norm0, 1e-7) * Math.Max(norm1, 1e-7)), -1, 1);
        double theta = Math.Acos(cos), sin = Math.Sin(theta);
        if (Math.Abs(sin) < 1e-8) return (1 - t, t);
        return (Math.Sin((1 - t) * theta) / sin, Math.Sin(t * theta) / sin);
    }

    /// <inheritdoc />
    public void Merge(TensorJob job)
    {
        var models = job.NonBaseModels().ToArray();
        double w0 = job.ModelParam(models[0], "weight", null), w1 = job.ModelParam(models[1], "weight", null);
        double t = Math.Abs(w0 + w1) < 1e-6 ? 0.5 : w1 / (w0 + w1);
        bool withBase = job.BaseSource >= 0;
        int[] sources = withBase ? [job.SourceOf(models[0]), job.SourceOf(models[1]), job.BaseSource] : [job.SourceOf(models[0]), job.SourceOf(models[1])];
        bool flatten = job.Flag("nuslerp_flatten", true), rowWise = job.Flag("nuslerp_row_wise", false);
        if (job.RowLength >= job.Count) flatten = true; // a 1-D tensor is one vector either way (mergekit's transpose leaves it as it is)
        long rowLen = Math.Max(1, job.RowLength);

        // v0 and v1 of a block into the scratch rows (task vectors when there is a base).
        void Vectors(Block b, float[] v0, float[] v1)
        {
            b.In(0).CopyTo(v0); b.In(1).CopyTo(v1);
            if (!withBase) return;
            TensorPrimitives.Subtract(v0.AsSpan(0, b.Length), b.In(2), v0.AsSpan(0, b.Length));
            TensorPrimitives.Subtract(v1.AsSpan(0, b.Length), b.In(2), v1.AsSpan(0, b.Length));
        }
        // out[from..to) = s0 v0 + s1 v1 (+ base), s0/s1 one value or one per element of the row.
        void Mix(Block b, float[] v0, float[] v1, int from, int len, ReadOnlySpan<float> s0, ReadOnlySpan<float> s1)
        {
            var o = b.Out.Slice(from, len);
            if (s0.Length == 1) TensorPrimitives.Multiply(v0.AsSpan(from, len), s0[0], o); else TensorPrimitives.Multiply(v0.AsSpan(from, len), s0, o);
            if (s1.Length == 1) TensorPrimitives.MultiplyAdd(v1.AsSpan(from, len), s1[0], o, o); else TensorPrimitives.MultiplyAdd(v1.AsSpan(from, len), s1, o, o);
            if (withBase) TensorPrimitives.Add(o, b.In(2).Slice(from, len), o);
        }
        long align = flatten ? 1 : rowWise ? ColumnBlock(rowLen) : rowLen;
        (float[], float[]) Scratch() { int n = BlockPasses.BlockLength(job, align); return (new float[n], new float[n]); }

        if (!flatten && !rowWise)
        {
            // One vector per row: statistics and mixing inside the block.
            BlockPasses.Map(job, sources, rowLen, Scratch, (b, s) =>
            {
                Vectors(b, s.Item1, s.Item2);
                int r = (int)rowLen;
                for (int r0 = 0; r0 < b.Length; r0 += r)
                {
                    var x = s.Item1.AsSpan(r0, r); var y = s.Item2.AsSpan(r0, r);
                    var (xy, xx, yy) = VectorMath.Moments(x, y);
                    var (c0, c1) = Coefficients(t, xy, Math.Sqrt(xx), Math.Sqrt(yy));
                    Mix(b, s.Item1, s.Item2, r0, r, [(float)c0], [(float)c1]);
                }
            });
            return;
        }
        // Whole tensor (one vector) or one vector per column (position within a row): statistics first.
        int vectors = flatten ? 1 : (int)rowLen;
        var stats = new double[3 * vectors];
        using var scratch = new ThreadLocal<(float[], float[])>(Scratch);
        BlockPasses.Scan(job, sources, align, () => new double[3 * vectors], (b, part) =>
        {
            var s = scratch.Value;
            Vectors(b, s.Item1, s.Item2);
            if (flatten)
            {
                var x = s.Item1.AsSpan(0, b.Length); var y = s.Item2.AsSpan(0, b.Length);
                (part[0], part[1], part[2]) = VectorMath.Moments(x, y);
                return;
            }
            for (int j = 0; j < b.Length; j++)
            {
                int v = j % vectors; // blocks start on a row
                part[v] += (double)s.Item1[j] * s.Item2[j];
                part[vectors + v] += (double)s.Item1[j] * s.Item1[j];
                part[2 * vectors + v] += (double)s.Item2[j] * s.Item2[j];
            }
        }, part => { for (int i = 0; i < part.Length; i++) stats[i] += part[i]; });
        var c0 = new float[vectors]; var c1 = new float[vectors];
        for (int v = 0; v < vectors; v++)
        {
            var (a, b) = Coefficients(t, stats[v], Math.Sqrt(stats[vectors + v]), Math.Sqrt(stats[2 * vectors + v]));
            c0[v] = (float)a; c1[v] = (float)b;
        }
        BlockPasses.Map(job, sources, align, Scratch, (b, s) =>
        {
            Vectors(b, s.Item1, s.Item2);
            if (flatten) Mix(b, s.Item1, s.Item2, 0, b.Length, c0, c1);
            else for (int r0 = 0; r0 < b.Length; r0 += vectors) Mix(b, s.Item1, s.Item2, r0, vectors, c0, c1);
        });
    }

    // Column statistics keep one partial per block: blocks of about 1M elements keep them few.
    private static long ColumnBlock(long rowLen) => rowLen * Math.Max(1, (1L << 20) / rowLen);
}
