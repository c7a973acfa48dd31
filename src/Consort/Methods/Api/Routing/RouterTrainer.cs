namespace Consort.Methods.Api.Routing;

/// <summary>Settings shared by the embedding routers, and each kind's own.</summary>
public sealed record RouterTrainingOptions
{
    /// <summary>λ in quality − λ·cost (see <see cref="RoutingDataset.Utility"/>).</summary>
    public double CostWeight { get; init; }
    /// <summary>Seed for initialisation, shuffling and noise.</summary>
    public int Seed { get; init; } = 42;
    /// <summary>Neighbours of the knn router.</summary>
    public int K { get; init; } = 10;
    /// <summary>The mlp router's settings.</summary>
    public MlpRouterOptions Mlp { get; init; } = new();
    /// <summary>The mf router's settings.</summary>
    public MfRouterOptions Mf { get; init; } = new();
    /// <summary>The sw_ranking router's L2 penalty on ratings.</summary>
    public double SwRegularization { get; init; } = 1e-3;
}

/// <summary>Trains the embedding routers by kind and rebuilds saved ones.</summary>
public static class RouterTrainer
{
    /// <summary>Kinds <see cref="Train"/> accepts.</summary>
    public static IReadOnlyList<string> Kinds { get; } = ["knn", "mlp", "mf", "sw_ranking"];

    /// <summary>Trains a <paramref name="kind"/> router on the dev outcomes.</summary>
    public static Router Train(string kind, RoutingDataset data, RouterTrainingOptions options)
    {
        var utility = data.Utility(options.CostWeight);
        Router router = kind switch
        {
            "knn" => KnnRouter.Train(data, utility, options.K),
            "mlp" => MlpRouter.Train(data, utility, options.Mlp, options.Seed),
            "mf" => MatrixFactorizationRouter.Train(data, utility, options.Mf, options.Seed),
            "sw_ranking" => SimilarityWeightedRouter.Train(data, utility, options.SwRegularization),
            _ => throw new ArgumentException($"unknown router kind '{kind}'; valid: {string.Join(", ", Kinds)}"),
        };
        router.Strong = data.Strongest();
        return router;
    }

    internal static Router Restore(string kind, IReadOnlyList<string> models, int dim, RouterState state) => kind switch
    {
        "knn" => KnnRouter.Restore(models, dim, state),
        "mlp" => MlpRouter.Restore(models, dim, state),
        "mf" => MatrixFactorizationRouter.Restore(models, dim, state),
        "sw_ranking" => SimilarityWeightedRouter.Restore(models, dim, state),
        "graph" => GraphRouter.Restore(models, dim, state),
        _ => throw new FormatException($"unknown router kind '{kind}'"),
    };
}
