using Consort.Methods.Api.Routing;

namespace Consort.Tests.Methods.Api.Routing;

public class RouterTests
{
    // Three skills in three directions of an 8-dimensional space; member k knows skill k only.
    private static (RoutingDataset Data, List<(float[] E, int Skill)> Test) Skills(int perSkill = 30, int seed = 1, double[]? price = null)
    {
        var rng = new Random(seed);
        float[] Point(int skill)
        {
            var e = new float[8];
            for (int i = 0; i < 8; i++) e[i] = (float)(rng.NextDouble() * 0.6 - 0.3);
            e[skill * 2] += 1; e[skill * 2 + 1] += 0.7f;
            return e;
        }
        var emb = new List<float[]>(); var q = new List<double[]>(); var c = new List<double[]>();
        for (int i = 0; i < perSkill * 3; i++)
        {
            int s = i % 3;
            emb.Add(Point(s));
            q.Add([s == 0 ? 1 : 0, s == 1 ? 1 : 0, s == 2 ? 1 : 0]);
            c.Add(price ?? [1, 1, 1]);
        }
        var test = Enumerable.Range(0, 60).Select(i => (Point(i % 3), i % 3)).ToList();
        return (new RoutingDataset(["a", "b", "c"], emb, q, c), test);
    }

    public static TheoryData<string> Kinds => new(RouterTrainer.Kinds);

    [Theory]
    [MemberData(nameof(Kinds))]
    public void EveryKindLearnsWhichMemberKnowsWhichSkill(string kind)
    {
        var (data, test) = Skills();
        var router = RouterTrainer.Train(kind, data, new() { Seed = 3, Mf = new() { Epochs = 200, LearningRate = 1e-2 } });
        double accuracy = test.Average(t => Router.ArgMax(router.Predict(t.E)) == t.Skill ? 1.0 : 0.0);
        Assert.True(accuracy >= 0.95, $"{kind}: routed {accuracy:P0} of test queries to the member that knows them");
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void TrainingIsReproducibleFromTheSeedAndSurvivesSaveAndLoad(string kind)
    {
        var (data, test) = Skills();
        var a = RouterTrainer.Train(kind, data, new() { Seed = 5 });
        var b = RouterTrainer.Train(kind, data, new() { Seed = 5 });
        var identity = new RouterIdentity(data.Models, ["id-a", "id-b", "id-c"], "test-embedding");
        var path = Path.Combine(Path.GetTempPath(), $"consort-router-{kind}-{Guid.NewGuid():N}.json");
        try
        {
            RouterFile.Save(path, a, identity);
            var loaded = RouterFile.Load(path, identity, kind);
            Assert.Equal(kind, loaded.Kind);
            Assert.Equal(a.Strong, loaded.Strong);
            foreach (var (e, _) in test.Take(10))
            {
                Assert.Equal(a.Predict(e), b.Predict(e));
                Assert.Equal(a.Predict(e), loaded.Predict(e));
            }
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void ARouterFileForOtherModelsOrEmbeddingsIsRefusedWithTheReason()
    {
        var (data, _) = Skills();
        var router = RouterTrainer.Train("knn", data, new());
        var path = Path.Combine(Path.GetTempPath(), $"consort-router-{Guid.NewGuid():N}.json");
        try
        {
            RouterFile.Save(path, router, new RouterIdentity(data.Models, ["x", "y", "z"], "emb"));
            var other = Assert.Throws<ConfigException>(() => RouterFile.Load(path, new RouterIdentity(["a", "b", "d"], ["x", "y", "z"], "emb")));
            Assert.Contains("trained for models [a, b, c], the members here are [a, b, d]", other.Message);
            var file = Assert.Throws<ConfigException>(() => RouterFile.Load(path, new RouterIdentity(data.Models, ["x", "y", "other"], "emb")));
            Assert.Contains("model 'c' was z, here it is other", file.Message);
            var emb = Assert.Throws<ConfigException>(() => RouterFile.Load(path, new RouterIdentity(data.Models, ["x", "y", "z"], "minilm")));
            Assert.Contains("embeddings 'emb'", emb.Message);
            var kind = Assert.Throws<ConfigException>(() => RouterFile.Load(path, new RouterIdentity(data.Models, ["x", "y", "z"], "emb"), "mf"));
            Assert.Contains("holds a 'knn' router", kind.Message);
            File.WriteAllText(path, "{\"format\": \"something else\"}");
            Assert.Contains("is not a Consort router", Assert.Throws<ConfigException>(() => RouterFile.Load(path, new RouterIdentity(data.Models, ["x", "y", "z"], "emb"))).Message);
        }
        finally { File.Delete(path); }
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void ACostWeightMovesQueriesToTheCheapMemberWhenItIsAlmostAsGood(string kind)
    {
        // "c" knows everything but costs 10x; "a" knows skill 0 and 1 on half of the queries.
        var rng = new Random(2);
        var emb = new List<float[]>(); var q = new List<double[]>(); var c = new List<double[]>();
        for (int i = 0; i < 90; i++)
        {
            var e = new float[4]; for (int k = 0; k < 4; k++) e[k] = (float)rng.NextDouble();
            e[i % 2] += 2;
            emb.Add(e);
            double aQuality = i % 2 == 0 ? 1 : (i % 4 == 1 ? 1 : 0); // skill 0 always, skill 1 half the time
            q.Add([aQuality, 1]); c.Add([1, 10]);
        }
        var data = new RoutingDataset(["cheap", "pricey"], emb, q, c);
        var probe = new float[] { 2.5f, 0.5f, 0.5f, 0.5f }; // skill 0: both right, cheap is cheaper
        var hard = new float[] { 0.5f, 2.5f, 0.5f, 0.5f };  // skill 1: pricey is better
        var quality = RouterTrainer.Train(kind, data, new() { CostWeight = 0, Mf = new() { Epochs = 200, LearningRate = 1e-2 } });
        var thrifty = RouterTrainer.Train(kind, data, new() { CostWeight = 2, Mf = new() { Epochs = 200, LearningRate = 1e-2 } });
        Assert.Equal(1, Router.ArgMax(quality.Predict(hard)));
        Assert.Equal(0, Router.ArgMax(thrifty.Predict(hard)));
        Assert.Equal(0, Router.ArgMax(thrifty.Predict(probe)));
    }

    [Fact]
    public void BradleyTerryRatingsOrderMembersByWinsAndTiesSplit()
    {
        // a beats b on 3 queries of 4, ties on the fourth; c loses to both everywhere.
        double[][] u = [[1, 0, -1], [1, 0, -1], [1, 0, -1], [0.5, 0.5, -1]];
        var r = SimilarityWeightedRouter.FitBradleyTerry(u, [1, 1, 1, 1], 3, 1e-3);
        Assert.True(r[0] > r[1] && r[1] > r[2]);
        // Equal weights on symmetric outcomes give equal ratings.
        var even = SimilarityWeightedRouter.FitBradleyTerry([[1, 0], [0, 1]], [1, 1], 2, 1e-3);
        Assert.Equal(even[0], even[1], 9);
        // Weights decide: the query weighted 100x makes its winner the favourite.
        var weighted = SimilarityWeightedRouter.FitBradleyTerry([[1, 0], [0, 1]], [100, 1], 2, 1e-3);
        Assert.True(weighted[0] - weighted[1] > 3);
        Assert.Equal(100, SimilarityWeightedRouter.Weight(1, 1), 9);   // RouteLLM: 10 * 10^(sim/max)
        Assert.Equal(10, SimilarityWeightedRouter.Weight(0, 0.5), 9);
    }

    [Fact]
    public void ThresholdRoutingIsArgMaxAtZeroAndMovesCallsMonotonically()
    {
        double[] s = [0.2, 0.5, 0.4];
        Assert.Equal(0.1, Router.StrongAdvantage(s, 1), 9);
        Assert.Equal(1, Router.Route(s, 1, 0));
        Assert.Equal(2, Router.Route(s, 1, 0.2)); // strong not far enough ahead: best other
        Assert.Equal(1, Router.Route([0.9, 0.5, 0.4], 1, -0.5));
    }

    [Fact]
    public void TheStrongestMemberIsTheMostExpensiveThenTheBest()
    {
        var e = new List<float[]> { new float[] { 1 }, new float[] { 2 } };
        Assert.Equal(2, new RoutingDataset(["a", "b", "c"], e, [[1, 1, 0], [1, 1, 0]], [[1, 1, 5], [1, 1, 5]]).Strongest());
        Assert.Equal(1, new RoutingDataset(["a", "b", "c"], e, [[0, 1, 0], [1, 1, 0]], null).Strongest());
        var u = new RoutingDataset(["a", "b"], e, [[1, 1], [1, 0]], [[1, 3], [1, 1]]).Utility(1);
        Assert.Equal(1 - 1 / 2.0, u[0][0], 9);  // cost scale: the largest mean cost (2)
        Assert.Equal(1 - 3 / 2.0, u[0][1], 9);
        Assert.Throws<ArgumentException>(() => new RoutingDataset(["a", "b"], e, [[1, 1]], null));
    }

    [Fact]
    public void TheGraphRouterLearnsFromDescriptionsAndOutcomes()
    {
        var (data, test) = Skills(40);
        var descriptions = new List<float[]> { new float[] { 1, 0, 0 }, new float[] { 0, 1, 0 }, new float[] { 0, 0, 1 } };
        var router = GraphRouter.Train(data, descriptions, [0.3f, 0.3f, 0.3f, 0.3f],
            new GraphRouterOptions(LearningRate: 1e-2, TrainEpochs: 150, MaskSamples: 4), seed: 9);
        double accuracy = test.Average(t => Router.ArgMax(router.Predict(t.E)) == t.Skill ? 1.0 : 0.0);
        Assert.True(accuracy >= 0.9, $"graph router routed {accuracy:P0} correctly");
        Assert.True(router.ValidationF1 > 0.8);
        var path = Path.Combine(Path.GetTempPath(), $"consort-graph-{Guid.NewGuid():N}.json");
        try
        {
            var id = new RouterIdentity(data.Models, ["1", "2", "3"], "e", "scenario=Performance First");
            RouterFile.Save(path, router, id);
            Assert.Equal(router.Predict(test[0].E), RouterFile.Load(path, id).Predict(test[0].E));
            Assert.Contains("trained with scenario=Performance First", Assert.Throws<ConfigException>(() => RouterFile.Load(path, id with { Settings = "scenario=Balance" })).Message);
        }
        finally { File.Delete(path); }
        Assert.Throws<ArgumentException>(() => GraphRouter.Train(data, descriptions, [1f], new GraphRouterOptions(InEdges: 2), 1));
    }

    [Fact]
    public void GraphScenariosTradeQualityForCost()
    {
        var o = new GraphRouterOptions(Scenario: GraphRouterOptions.ParseScenario("Cost First"));
        Assert.Equal((0.2, 0.8), o.Weights);
        Assert.Equal((0.5, 0.5), (o with { Scenario = GraphRouterOptions.ParseScenario("Balance") }).Weights);
        Assert.Contains("\"Performance First\"", Assert.Throws<ArgumentException>(() => GraphRouterOptions.ParseScenario("fast")).Message);
    }

    [Fact]
    public void MacroF1CountsEveryClassEqually()
    {
        Assert.Equal(1.0, GraphRouter.MacroF1([(0, 0), (1, 1)], 3), 9);
        // class 0: tp 1 fp 1 fn 0 -> 2/3; class 1: tp 0 fp 0 fn 1 -> 0
        Assert.Equal((2.0 / 3 + 0) / 2, GraphRouter.MacroF1([(0, 0), (1, 0)], 2), 9);
    }
}
