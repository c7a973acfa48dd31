namespace Consort.Methods.Api.Routing;

/// <summary>
/// What a router learns from: for each dev query its embedding, and each member's observed quality (the task's
/// score of its answer, in [0, 1]) and cost (price or tokens of that call, any non-negative unit) on it.
/// </summary>
public sealed class RoutingDataset
{
    /// <summary>Checks shapes and values (finite quality, non-negative cost) once, so routers need not.</summary>
    public RoutingDataset(IReadOnlyList<string> models, IReadOnlyList<float[]> embeddings, IReadOnlyList<double[]> quality, IReadOnlyList<double[]>? cost = null)
    {
        if (models.Count < 2) throw new ArgumentException("a router needs at least two models");
        if (embeddings.Count == 0) throw new ArgumentException("no training queries");
        if (quality.Count != embeddings.Count || (cost is not null && cost.Count != embeddings.Count))
            throw new ArgumentException($"{embeddings.Count} embeddings but {quality.Count} quality rows and {cost?.Count} cost rows");
        int dim = embeddings[0].Length;
        if (dim == 0) throw new ArgumentException("empty embeddings");
        for (int i = 0; i < embeddings.Count; i++)
        {
            if (embeddings[i].Length != dim) throw new ArgumentException($"embedding {i} has {embeddings[i].Length} dimensions, the first has {dim}");
            if (quality[i].Length != models.Count) throw new ArgumentException($"quality row {i} has {quality[i].Length} values for {models.Count} models");
            if (quality[i].Any(q => !double.IsFinite(q))) throw new ArgumentException($"quality row {i} is not finite");
            if (cost is not null && (cost[i].Length != models.Count || cost[i].Any(c => !double.IsFinite(c) || c < 0)))
                throw new ArgumentException($"cost row {i} must hold {models.Count} finite non-negative values");
        }
        Models = models; Embeddings = embeddings; Quality = quality;
        Cost = cost ?? embeddings.Select(_ => new double[models.Count]).ToArray();
    }

    /// <summary>Member names, in config order (the router's output order).</summary>
    public IReadOnlyList<string> Models { get; }
    /// <summary>Query embeddings.</summary>
    public IReadOnlyList<float[]> Embeddings { get; }
    /// <summary>[query][model] observed quality.</summary>
    public IReadOnlyList<double[]> Quality { get; }
    /// <summary>[query][model] observed cost (zeros when none was given).</summary>
    public IReadOnlyList<double[]> Cost { get; }
    /// <summary>Queries.</summary>
    public int Count => Embeddings.Count;
    /// <summary>Embedding width.</summary>
    public int Dimension => Embeddings[0].Length;

    /// <summary>Each model's mean cost over the queries.</summary>
    public double[] MeanCost() => Enumerable.Range(0, Models.Count).Select(m => Cost.Average(c => c[m])).ToArray();
    /// <summary>Each model's mean quality over the queries.</summary>
    public double[] MeanQuality() => Enumerable.Range(0, Models.Count).Select(m => Quality.Average(q => q[m])).ToArray();

    /// <summary>
    /// The objective every router learns: quality − λ·cost/scale per query and model, where scale is the largest
    /// model's mean cost, so that λ = 1 charges the most expensive model one quality point per query.
    /// </summary>
    public double[][] Utility(double costWeight)
    {
        if (!double.IsFinite(costWeight) || costWeight < 0) throw new ArgumentOutOfRangeException(nameof(costWeight), "cost weight must be finite and >= 0");
        double scale = MeanCost().Max();
        if (scale <= 0) scale = 1;
        return Enumerable.Range(0, Count).Select(i => Enumerable.Range(0, Models.Count)
            .Select(m => Quality[i][m] - costWeight * Cost[i][m] / scale).ToArray()).ToArray();
    }

    /// <summary>
    /// The "strong" model of RouteLLM's curves: the most expensive on average; among equally priced ones the one
    /// with the best mean quality (the last on a full tie).
    /// </summary>
    public int Strongest()
    {
        var cost = MeanCost(); var quality = MeanQuality();
        int best = 0;
        for (int m = 1; m < Models.Count; m++)
            if (cost[m] > cost[best] + 1e-12 || (Math.Abs(cost[m] - cost[best]) <= 1e-12 && quality[m] >= quality[best])) best = m;
        return best;
    }
}
