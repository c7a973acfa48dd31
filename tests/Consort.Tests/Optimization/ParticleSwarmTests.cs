using System.Text.Json;
using Consort.Optimization;

namespace Consort.Tests.Optimization;

public class ParticleSwarmTests
{
    // Maximum 0 at (0.5, -0.25, 0.75).
    private static readonly double[] Target = [0.5, -0.25, 0.75];
    private static double Score(double[] x) => -x.Select((v, i) => (v - Target[i]) * (v - Target[i])).Sum();

    private static List<double[][]> Trajectory(ParticleSwarm swarm)
    {
        var seen = new List<double[][]>();
        while (!swarm.Finished)
        {
            var p = swarm.Positions.ToArray();
            seen.Add(p);
            swarm.Tell(p.Select(Score).ToList());
        }
        return seen;
    }

    [Fact]
    public void Same_seed_gives_the_same_search_and_another_seed_another()
    {
        var o = new ParticleSwarmOptions { Population = 6, MaxIterations = 12, Patience = 50, Seed = 7 };
        string Run(ParticleSwarmOptions opt) => JsonSerializer.Serialize(Trajectory(new ParticleSwarm(3, opt)));
        Assert.Equal(Run(o), Run(o));
        Assert.NotEqual(Run(o), Run(o with { Seed = 8 }));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(6)]
    public void It_climbs_towards_the_maximum_and_stays_in_the_bounds(int seed)
    {
        // Classic update (weights not normalized): converges on a smooth bowl.
        var classic = new ParticleSwarmOptions
        {
            Population = 10, MaxIterations = 60, Patience = 60, RestartPatience = 60, Seed = seed, NormalizeWeights = false,
            Inertia = 0.7, CognitiveCoeff = 1.5, SocialCoeff = 1.5, RepelTerm = false, StepLength = 1, StepLengthFactor = 1, MinimumStepLength = 1,
        };
        var swarm = new ParticleSwarm(3, classic);
        double first = swarm.Positions.Max(Score);
        foreach (var step in Trajectory(swarm))
            Assert.All(step, x => Assert.All(x, v => Assert.InRange(v, -1, 1)));
        Assert.True(swarm.BestScore > -1e-3, $"best {swarm.BestScore} at [{string.Join(", ", swarm.Best!)}]");
        Assert.Equal(swarm.BestScore!.Value, Score(swarm.Best!), 12);

        // Model Swarms' normalized update contracts fast (a convex mix of directions): it improves on the start, no more promised.
        var moco = new ParticleSwarm(3, new ParticleSwarmOptions { Population = 10, MaxIterations = 30, Patience = 30, Seed = seed });
        first = moco.Positions.Max(Score);
        Trajectory(moco);
        Assert.True(moco.BestScore > first, $"{moco.BestScore} vs start {first}");
    }

    [Fact]
    public void Per_coordinate_bounds_shape_the_start_and_clamp_the_moves()
    {
        var o = new ParticleSwarmOptions { Population = 8, MaxIterations = 15, Patience = 50, LowerBounds = [0, 10], UpperBounds = [1, 20], StepLength = 3, MinimumStepLength = 3 };
        var swarm = new ParticleSwarm(2, o);
        foreach (var step in Trajectory(swarm))
            Assert.All(step, x => { Assert.InRange(x[0], 0, 1); Assert.InRange(x[1], 10, 20); });
        // Without clamping the same moves leave the box (the bounds only shape the start, as in MoCo).
        var free = new ParticleSwarm(2, o with { Clamp = false });
        Assert.Contains(Trajectory(free).SelectMany(s => s), x => x[0] < 0 || x[0] > 1 || x[1] < 10 || x[1] > 20);
    }

    [Fact]
    public void Patience_stops_a_search_whose_best_no_longer_improves()
    {
        var swarm = new ParticleSwarm(2, new ParticleSwarmOptions { Population = 4, MaxIterations = 100, Patience = 3 });
        int iterations = 0;
        while (!swarm.Tell([1, 1, 1, 1])) iterations++;
        // Best history 1,1,1,1: the 4th iteration is the first whose score does not beat the two before it.
        Assert.Equal(4, swarm.Iteration);
        Assert.True(swarm.Finished);
        Assert.Throws<InvalidOperationException>(() => swarm.Tell([1, 1, 1, 1]));
    }

    [Fact]
    public void A_saved_state_resumes_exactly_where_the_search_was()
    {
        var o = new ParticleSwarmOptions { Population = 5, MaxIterations = 10, Patience = 20, Seed = 11 };
        var whole = Trajectory(new ParticleSwarm(3, o));

        var first = new ParticleSwarm(3, o);
        for (int i = 0; i < 4; i++) first.Tell(first.Positions.Select(Score).ToList());
        var json = JsonSerializer.Serialize(first.State);
        var resumed = ParticleSwarm.Restore(JsonSerializer.Deserialize<ParticleSwarmState>(json)!, o);
        Assert.Equal(4, resumed.Iteration);
        var rest = Trajectory(resumed);
        Assert.Equal(JsonSerializer.Serialize(whole.Skip(4)), JsonSerializer.Serialize(rest));

        Assert.Throws<ConfigException>(() => ParticleSwarm.Restore(first.State, o with { Population = 6 }));
    }

    [Fact]
    public async Task Optimize_scores_in_parallel_reports_progress_and_matches_the_sequential_search()
    {
        var o = new ParticleSwarmOptions { Population = 6, MaxIterations = 8, Patience = 20, Seed = 5 };
        var reports = new List<SwarmProgress>();
        var parallel = await new ParticleSwarm(3, o).OptimizeAsync(async (x, p, ct) => { await Task.Delay(p % 3, ct); return Score(x); },
            new SyncProgress(reports.Add), parallelism: 4);
        var sequential = new ParticleSwarm(3, o);
        Trajectory(sequential);
        Assert.Equal(sequential.Best, parallel.Best);
        Assert.Equal(8, reports.Count);
        Assert.Equal(Enumerable.Range(1, 8), reports.Select(r => r.Iteration));
        Assert.True(reports[^1].Stopped && reports.Take(7).All(r => !r.Stopped));
        Assert.Equal(parallel.Score, reports[^1].BestScore);
        // Best-so-far never decreases.
        Assert.True(reports.Zip(reports.Skip(1)).All(p => p.Second.BestScore >= p.First.BestScore));
    }

    [Fact]
    public void Non_finite_scores_count_as_the_worst()
    {
        var swarm = new ParticleSwarm(1, new ParticleSwarmOptions { Population = 3, MaxIterations = 5, Seed = 2 });
        var p = swarm.Positions;
        swarm.Tell([double.NaN, 0.5, double.PositiveInfinity]);
        Assert.Equal(0.5, swarm.BestScore);
        Assert.Equal(p[1], swarm.Best);
    }

    [Theory]
    [InlineData("population")]
    [InlineData("inertia")]
    [InlineData("step_length")]
    [InlineData("bounds")]
    [InlineData("all zero")]
    public void Bad_settings_are_named(string what)
    {
        var o = what switch
        {
            "population" => new ParticleSwarmOptions { Population = 0 },
            "inertia" => new ParticleSwarmOptions { Inertia = -1 },
            "step_length" => new ParticleSwarmOptions { StepLength = 0 },
            "bounds" => new ParticleSwarmOptions { LowerBound = 1, UpperBound = 1 },
            _ => new ParticleSwarmOptions { Inertia = 0, CognitiveCoeff = 0, SocialCoeff = 0, RepelCoeff = 0 },
        };
        var e = Assert.Throws<ConfigException>(() => new ParticleSwarm(2, o));
        Assert.Contains(what == "all zero" ? "could not move" : what, e.Message);
    }

    private sealed class SyncProgress(Action<SwarmProgress> report) : IProgress<SwarmProgress>
    {
        public void Report(SwarmProgress value) => report(value);
    }
}
