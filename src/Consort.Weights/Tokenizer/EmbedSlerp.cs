using Consort.Weights.Engine;
using Consort.Weights.Methods;

namespace Consort.Weights.Tokenizer;

/// <summary>
/// mergekit's legacy <c>embed_slerp</c> for the token rows of a two-model tokenizer merge: where both models have a
/// token its row is the SLERP of their rows (one angle over the whole tensor, the base at t = 0, as mergekit's slerp);
/// a token only one model has keeps that model's row; rows no model has (padding) are zero.
/// </summary>
public static class EmbedSlerp
{
    /// <summary>Merges one token-row tensor of a two-model merge with interpolation factor <paramref name="t"/>.</summary>
    public static void Merge(TensorJob job, TokenizerPlan plan, double t)
    {
        int other = job.SourceOf(job.NonBaseModels().Single());
        int[] sources = [job.BaseSource, other];
        var has0 = plan.Permutations[job.BaseSource]; var has1 = plan.Permutations[other];
        int width = (int)job.RowLength;
        bool Has(int[] p, long row) => row < p.Length && p[row] >= 0;
        var stats = new double[3];
        BlockPasses.Scan(job, sources, width, () => new double[3], (b, part) =>
        {
            for (int r0 = 0; r0 < b.Length; r0 += width)
            {
                long row = (b.Start + r0) / width;
                var x = b.In(0).Slice(r0, width); var y = b.In(1).Slice(r0, width);
                bool h0 = Has(has0, row), h1 = Has(has1, row);
                if (h0 && h1) part[0] += VectorMath.Dot(x, y);
                if (h0) part[1] += VectorMath.SumSquares(x);
                if (h1) part[2] += VectorMath.SumSquares(y);
            }
        }, part => { for (int i = 0; i < 3; i++) stats[i] += part[i]; });
        var (s0, s1) = SlerpMerge.Coefficients(t, stats[0], Math.Sqrt(stats[1]), Math.Sqrt(stats[2]));
        BlockPasses.Map(job, sources, width, b =>
        {
            for (int r0 = 0; r0 < b.Length; r0 += width)
            {
                long row = (b.Start + r0) / width;
                var x = b.In(0).Slice(r0, width); var y = b.In(1).Slice(r0, width); var o = b.Out.Slice(r0, width);
                bool h0 = Has(has0, row), h1 = Has(has1, row);
                if (h0 && h1)
                    for (int j = 0; j < width; j++) o[j] = (float)(s0 * x[j] + s1 * y[j]);
                else if (h0) x.CopyTo(o);
                else if (h1) y.CopyTo(o);
                else o.Clear();
            }
        });
    }
}
