namespace Consort.Methods.Api.Routing;

/// <summary>
/// <c>knn</c>: the <c>k</c> dev queries most similar to the query (cosine) vote with their observed utilities,
/// weighted by similarity; the prediction for each member is that weighted mean.
/// </summary>
public sealed class KnnRouter : Router
{
    private readonly DevMemory _memory;
    private readonly int _k;

    private KnnRouter(IReadOnlyList<string> models, DevMemory memory, int k) : base(models, memory.Points[0].Length)
    {
        if (k < 1) throw new ArgumentOutOfRangeException(nameof(k), "knn: k must be at least 1");
        _memory = memory; _k = Math.Min(k, memory.Points.Length);
    }

    /// <summary>Keeps the dev set: training is remembering.</summary>
    public static KnnRouter Train(RoutingDataset data, double[][] utility, int k) => new(data.Models, DevMemory.From(data, utility), k);

    /// <inheritdoc />
    public override string Kind => "knn";

    /// <inheritdoc />
    protected override double[] Score(ReadOnlySpan<float> embedding)
    {
        var q = Normalized(embedding);
        var points = _memory.Points;
        var sims = new (float Sim, int Index)[points.Length];
        for (int i = 0; i < points.Length; i++) sims[i] = (System.Numerics.Tensors.TensorPrimitives.Dot(q, points[i]), i);
        // Stable order (similarity, then index) keeps results identical across runs.
        var nearest = sims.OrderByDescending(s => s.Sim).ThenBy(s => s.Index).Take(_k).ToArray();
        var result = new double[Models.Count];
        double total = 0;
        foreach (var (sim, i) in nearest)
        {
            // Shifted into (0, 2] so that dissimilar neighbours still count a little and weights never vanish.
            double w = 1 + sim + 1e-6;
            total += w;
            for (int m = 0; m < result.Length; m++) result[m] += w * _memory.Utility[i][m];
        }
        for (int m = 0; m < result.Length; m++) result[m] /= total;
        return result;
    }

    internal override void Save(RouterState state)
    {
        state.Set("k", _k);
        _memory.Save(state);
    }

    internal static KnnRouter Restore(IReadOnlyList<string> models, int dim, RouterState s) => new(models, DevMemory.Restore(s, dim, models.Count), s.Int("k"));
}
