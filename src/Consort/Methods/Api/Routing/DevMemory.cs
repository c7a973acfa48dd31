namespace Consort.Methods.Api.Routing;

/// <summary>Dev queries (unit-length embeddings) and their utilities, kept by the memory-based routers (knn, sw_ranking).</summary>
internal sealed record DevMemory(float[][] Points, double[][] Utility)
{
    /// <summary>Normalizes the embeddings and rounds utilities to float, the precision they are saved in.</summary>
    public static DevMemory From(RoutingDataset data, double[][] utility) =>
        new(data.Embeddings.Select(e => Router.Normalized(e)).ToArray(),
            utility.Select(u => u.Select(x => (double)(float)x).ToArray()).ToArray());

    public void Save(RouterState state)
    {
        state.Set("count", Points.Length);
        state.Set("points", Points.SelectMany(p => p).ToArray());
        state.Set("utility", Utility.SelectMany(u => u.Select(x => (float)x)).ToArray());
    }

    public static DevMemory Restore(RouterState s, int dim, int models)
    {
        int n = s.Int("count");
        var pts = s.Floats("points", n * dim); var u = s.Floats("utility", n * models);
        return new(Enumerable.Range(0, n).Select(i => pts.AsSpan(i * dim, dim).ToArray()).ToArray(),
            Enumerable.Range(0, n).Select(i => u.AsSpan(i * models, models).ToArray().Select(x => (double)x).ToArray()).ToArray());
    }
}
