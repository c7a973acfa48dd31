using System.Text.Json;
using Consort.Optimization;

namespace Consort.Tests.Optimization;

public class CmaEsTests
{
    private static double Sphere(double[] x) => x.Sum(v => v * v);
    private static double Rosenbrock(double[] x) => Enumerable.Range(0, x.Length - 1).Sum(i => 100 * Math.Pow(x[i + 1] - x[i] * x[i], 2) + Math.Pow(1 - x[i], 2));

    private static CmaEs Run(CmaEs es, Func<double[], double> f, int generations)
    {
        for (int g = 0; g < generations && es.StopReason is null; g++)
        {
            var xs = es.Ask();
            es.Tell(xs, xs.Select(f).ToArray());
        }
        return es;
    }

    [Fact]
    public void MinimizesTheSphere()
    {
        var es = Run(new CmaEs([3, -2, 1, 4, -1], 1.0, new CmaEsOptions { Seed = 1 }), Sphere, 400);
        Assert.True(es.BestFitness < 1e-10, $"best {es.BestFitness} after {es.Generation} generations");
        Assert.All(es.Mean, m => Assert.InRange(m, -1e-4, 1e-4));
        Assert.Equal(es.Generation * es.PopulationSize, es.Evaluations);
        Assert.Equal(4 + (int)Math.Floor(3 * Math.Log(5)), es.PopulationSize);
    }

    [Fact]
    public void FindsTheRosenbrockValley()
    {
        var es = Run(new CmaEs([-1, 1, -1, 1], 0.5, new CmaEsOptions { Seed = 7 }), Rosenbrock, 2000);
        Assert.True(es.BestFitness < 1e-6, $"best {es.BestFitness}");
        Assert.All(es.BestSolution!, v => Assert.InRange(v, 0.99, 1.01));
    }

    [Fact]
    public void StaysInsideTheBoundsAndFindsAnOptimumOnTheBoundary()
    {
        // Minimum of Σ (x − 2)² inside [−1, 1]^3 is the corner (1, 1, 1).
        var opts = new CmaEsOptions { Seed = 3, LowerBounds = [-1, -1, -1], UpperBounds = [1, 1, 1] };
        var es = new CmaEs([0, 0, 0], 0.5, opts);
        for (int g = 0; g < 150 && es.StopReason is null; g++)
        {
            var xs = es.Ask();
            Assert.All(xs, x => Assert.All(x, v => Assert.InRange(v, -1, 1)));
            es.Tell(xs, xs.Select(x => x.Sum(v => (v - 2) * (v - 2))).ToArray());
        }
        Assert.All(es.BestSolution!, v => Assert.InRange(v, 0.999, 1));
    }

    [Fact]
    public void TheSameSeedGivesTheSameSearchAndAnotherSeedAnother()
    {
        var a = Run(new CmaEs([1, 2], 0.3, new CmaEsOptions { Seed = 42 }), Sphere, 20);
        var b = Run(new CmaEs([1, 2], 0.3, new CmaEsOptions { Seed = 42 }), Sphere, 20);
        var c = Run(new CmaEs([1, 2], 0.3, new CmaEsOptions { Seed = 43 }), Sphere, 20);
        Assert.Equal(a.Ask().SelectMany(x => x), b.Ask().SelectMany(x => x));
        Assert.NotEqual(a.Ask().SelectMany(x => x), c.Ask().SelectMany(x => x));
    }

    [Fact]
    public void ASavedStateContinuesExactlyLikeTheUninterruptedSearch()
    {
        var whole = new CmaEs([2, -1, 0.5], 0.4, new CmaEsOptions { Seed = 9, LowerBounds = [-3, -3, -3], UpperBounds = [3, 3, 3] });
        var split = new CmaEs([2, -1, 0.5], 0.4, new CmaEsOptions { Seed = 9, LowerBounds = [-3, -3, -3], UpperBounds = [3, 3, 3] });
        Run(whole, Rosenbrock, 30);
        Run(split, Rosenbrock, 12);
        var pending = split.Ask(); // asked, then "killed" before Tell
        var json = JsonSerializer.Serialize(split.ExportState());
        var resumed = CmaEs.FromState(JsonSerializer.Deserialize<CmaEsState>(json)!);
        Assert.True(resumed.HasPending);
        Assert.Equal(pending.SelectMany(x => x), resumed.Ask().SelectMany(x => x)); // the same candidates come back
        Run(resumed, Rosenbrock, 18);
        Assert.Equal(whole.Generation, resumed.Generation);
        Assert.Equal(whole.Mean, resumed.Mean);
        Assert.Equal(whole.Sigma, resumed.Sigma);
        Assert.Equal(whole.BestFitness, resumed.BestFitness);
        Assert.Equal(whole.Ask().SelectMany(x => x), resumed.Ask().SelectMany(x => x));
    }

    [Fact]
    public void AskIsStableUntilTellAndTellChecksItsArguments()
    {
        var es = new CmaEs([0, 0], 1, new CmaEsOptions { Seed = 5, PopulationSize = 6 });
        Assert.Throws<InvalidOperationException>(() => es.Tell([], []));
        var xs = es.Ask();
        Assert.Equal(6, xs.Count);
        Assert.Equal(xs.SelectMany(x => x), es.Ask().SelectMany(x => x));
        Assert.Throws<ArgumentException>(() => es.Tell(xs.Take(5).ToArray(), new double[5]));
        var other = xs.Select(x => x.Select(v => v + 1).ToArray()).ToArray();
        Assert.Throws<ArgumentException>(() => es.Tell(other, new double[6]));
        // NaN is the worst fitness, never the best.
        es.Tell(xs, [double.NaN, 5, 4, 3, 2, 1]);
        Assert.Equal(1, es.BestFitness);
        Assert.Equal(xs[5], es.BestSolution);
        Assert.Throws<ArgumentOutOfRangeException>(() => new CmaEs([0], 0));
        Assert.Throws<ArgumentException>(() => new CmaEs([0, 0], 1, new CmaEsOptions { LowerBounds = [1, 1], UpperBounds = [0, 2] }));
    }

    [Fact]
    public void StopsWhenTheStepSizeVanishes()
    {
        var es = Run(new CmaEs([1, 1], 1, new CmaEsOptions { Seed = 2, TolX = 1e-6 }), Sphere, 10_000);
        Assert.NotNull(es.StopReason);
        Assert.True(es.Generation < 10_000);
    }
}
