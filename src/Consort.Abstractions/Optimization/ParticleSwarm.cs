using System.Text.Json.Serialization;

namespace Consort.Optimization;

/// <summary>How particles start moving.</summary>
public enum StartingVelocity
{
    /// <summary>Each velocity component uniform in [-1, 1] (scaled by the bounds' half-width).</summary>
    Random,
    /// <summary>At rest.</summary>
    Zero,
}

/// <summary>
/// Settings of a <see cref="ParticleSwarm"/>. The defaults and names follow Model Swarms / Heterogeneous Swarms (MoCo's
/// <c>NumericSwarm</c>): each step mixes the particle's own velocity (inertia), a pull to its personal best (cognitive),
/// a pull to the swarm's best (social) and a push away from the swarm's worst (repel), with the four weights drawn at random
/// and normalized to sum to one, then moves by <see cref="StepLength"/>, which shrinks every iteration.
/// </summary>
public sealed record ParticleSwarmOptions
{
    /// <summary>Particles.</summary>
    public int Population { get; init; } = 5;
    /// <summary>Most iterations (one evaluation of every particle each).</summary>
    public int MaxIterations { get; init; } = 5;
    /// <summary>Weight of the particle's own velocity.</summary>
    public double Inertia { get; init; } = 0.2;
    /// <summary>Weight of the pull towards the particle's personal best.</summary>
    public double CognitiveCoeff { get; init; } = 0.3;
    /// <summary>Weight of the pull towards the swarm's best.</summary>
    public double SocialCoeff { get; init; } = 0.4;
    /// <summary>Weight of the push away from the swarm's worst.</summary>
    public double RepelCoeff { get; init; } = 0.05;
    /// <summary>Whether the repel term is used at all.</summary>
    public bool RepelTerm { get; init; } = true;
    /// <summary>Draw each weight's random factor in [0, 1] every step (false: factors of 1).</summary>
    public bool WeightRandomness { get; init; } = true;
    /// <summary>
    /// Divide the four (randomized) weights by their sum each step, as Model Swarms does: the move is a convex mix of the
    /// four directions, which contracts fast. False gives the classic update (e.g. inertia 0.7, coefficients 1.5).
    /// </summary>
    public bool NormalizeWeights { get; init; } = true;
    /// <summary>How far a particle moves along its velocity in the first iteration.</summary>
    public double StepLength { get; init; } = 0.5;
    /// <summary>Step length multiplier per iteration.</summary>
    public double StepLengthFactor { get; init; } = 0.95;
    /// <summary>Step length floor.</summary>
    public double MinimumStepLength { get; init; } = 0.1;
    /// <summary>Stop when the swarm's best has not improved for this many iterations.</summary>
    public int Patience { get; init; } = 5;
    /// <summary>Send a particle back to its personal best, with a fresh random velocity, when it has not improved for this many iterations.</summary>
    public int RestartPatience { get; init; } = 3;
    /// <summary>Initial velocities.</summary>
    public StartingVelocity StartingVelocity { get; init; } = StartingVelocity.Random;
    /// <summary>Lower bound of every coordinate (initial positions are uniform between the bounds).</summary>
    public double LowerBound { get; init; } = -1;
    /// <summary>Upper bound of every coordinate.</summary>
    public double UpperBound { get; init; } = 1;
    /// <summary>Per-coordinate lower bounds (overrides <see cref="LowerBound"/>; length = dimension).</summary>
    public double[]? LowerBounds { get; init; }
    /// <summary>Per-coordinate upper bounds (overrides <see cref="UpperBound"/>; length = dimension).</summary>
    public double[]? UpperBounds { get; init; }
    /// <summary>Keep positions inside the bounds after each move (false: the bounds only shape the start, as in MoCo).</summary>
    public bool Clamp { get; init; } = true;
    /// <summary>Seed of every random draw (start, weights, restarts).</summary>
    public int Seed { get; init; } = 42;

    /// <summary>Checks the settings for a search of <paramref name="dimension"/> coordinates; throws <see cref="ConfigException"/> naming the bad one.</summary>
    public void Validate(int dimension)
    {
        static void Require(bool ok, string message) { if (!ok) throw new ConfigException("particle swarm: " + message); }
        Require(dimension >= 1, $"dimension must be at least 1, got {dimension}");
        Require(Population >= 1, $"population must be at least 1, got {Population}");
        Require(MaxIterations >= 1, $"max_iterations must be at least 1, got {MaxIterations}");
        foreach (var (name, v) in new[] { ("inertia", Inertia), ("cognitive_coeff", CognitiveCoeff), ("social_coeff", SocialCoeff), ("repel_coeff", RepelCoeff) })
            Require(double.IsFinite(v) && v >= 0, $"{name} must be a finite number >= 0, got {v}");
        Require(Inertia + CognitiveCoeff + SocialCoeff + (RepelTerm ? RepelCoeff : 0) > 0, "inertia, cognitive_coeff, social_coeff and repel_coeff are all 0: particles could not move");
        Require(double.IsFinite(StepLength) && StepLength > 0, $"step_length must be > 0, got {StepLength}");
        Require(double.IsFinite(StepLengthFactor) && StepLengthFactor > 0, $"step_length_factor must be > 0, got {StepLengthFactor}");
        Require(double.IsFinite(MinimumStepLength) && MinimumStepLength >= 0, $"minimum_step_length must be >= 0, got {MinimumStepLength}");
        Require(Patience >= 1, $"patience must be at least 1, got {Patience}");
        Require(RestartPatience >= 1, $"restart_patience must be at least 1, got {RestartPatience}");
        Require(LowerBounds is null || LowerBounds.Length == dimension, $"lower bounds have {LowerBounds?.Length} values for {dimension} coordinates");
        Require(UpperBounds is null || UpperBounds.Length == dimension, $"upper bounds have {UpperBounds?.Length} values for {dimension} coordinates");
        for (int i = 0; i < dimension; i++)
        {
            double lo = Lower(i), hi = Upper(i);
            Require(double.IsFinite(lo) && double.IsFinite(hi) && lo < hi, $"coordinate {i}: bounds [{lo}, {hi}] must be finite with lower < upper");
        }
    }

    internal double Lower(int i) => LowerBounds?[i] ?? LowerBound;
    internal double Upper(int i) => UpperBounds?[i] ?? UpperBound;
}

/// <summary>Where a search stands after an iteration (what a progress display shows).</summary>
/// <param name="Iteration">Iterations done.</param>
/// <param name="MaxIterations">Iterations planned.</param>
/// <param name="BestScore">Best score so far.</param>
/// <param name="IterationBest">Best score of this iteration's particles.</param>
/// <param name="IterationMean">Mean score of this iteration's particles.</param>
/// <param name="Stopped">True when the search ended here (patience or the iteration limit).</param>
public sealed record SwarmProgress(int Iteration, int MaxIterations, double BestScore, double IterationBest, double IterationMean, bool Stopped);

/// <summary>
/// Everything a <see cref="ParticleSwarm"/> needs to continue exactly where it was (JSON-serializable): positions,
/// velocities, bests, histories, step length and the random generator's state.
/// </summary>
public sealed record ParticleSwarmState
{
    /// <summary>Coordinates per particle.</summary>
    [JsonPropertyName("dimension")] public int Dimension { get; init; }
    /// <summary>Iterations done.</summary>
    [JsonPropertyName("iteration")] public int Iteration { get; init; }
    /// <summary>Whether the search has ended.</summary>
    [JsonPropertyName("finished")] public bool Finished { get; init; }
    /// <summary>Current step length.</summary>
    [JsonPropertyName("step_length")] public double StepLength { get; init; }
    /// <summary>Current positions (the particles to evaluate next).</summary>
    [JsonPropertyName("positions")] public double[][] Positions { get; init; } = [];
    /// <summary>Current velocities.</summary>
    [JsonPropertyName("velocities")] public double[][] Velocities { get; init; } = [];
    /// <summary>Personal best positions.</summary>
    [JsonPropertyName("personal_best")] public double[][] PersonalBest { get; init; } = [];
    /// <summary>Personal best scores (null: not evaluated yet).</summary>
    [JsonPropertyName("personal_best_scores")] public double?[] PersonalBestScores { get; init; } = [];
    /// <summary>Every score of every particle, oldest first.</summary>
    [JsonPropertyName("histories")] public double[][] Histories { get; init; } = [];
    /// <summary>The swarm's best position (null before the first iteration).</summary>
    [JsonPropertyName("global_best")] public double[]? GlobalBest { get; init; }
    /// <summary>The swarm's best score.</summary>
    [JsonPropertyName("global_best_score")] public double? GlobalBestScore { get; init; }
    /// <summary>The swarm's worst position.</summary>
    [JsonPropertyName("global_worst")] public double[]? GlobalWorst { get; init; }
    /// <summary>The swarm's worst score.</summary>
    [JsonPropertyName("global_worst_score")] public double? GlobalWorstScore { get; init; }
    /// <summary>The swarm's best score after each iteration.</summary>
    [JsonPropertyName("best_history")] public double[] BestHistory { get; init; } = [];
    /// <summary>State of the random generator (xoshiro256**).</summary>
    [JsonPropertyName("random")] public ulong[] Random { get; init; } = [];
}

/// <summary>
/// Particle swarm optimization that maximizes a score over a box of real coordinates, seeded and free of any backend:
/// methods that search weights, merge coefficients or graph structures ask it for <see cref="Positions"/>, score them
/// (in parallel or not, in any order), and <see cref="Tell"/> it the scores. The same seed, options and scores give the
/// same search; <see cref="State"/> and <see cref="Restore"/> resume a search exactly. Non-finite scores count as the worst.
/// </summary>
public sealed class ParticleSwarm
{
    private readonly ParticleSwarmOptions _o;
    private readonly double[][] _x, _v, _pbest;
    private readonly double?[] _pbestScore;
    private readonly List<double>[] _history;
    private readonly List<double> _bestHistory = [];
    private readonly Xoshiro _rng;
    private double[]? _gbest, _gworst;
    private double? _gbestScore, _gworstScore;
    private double _step;

    /// <summary>A new swarm of <see cref="ParticleSwarmOptions.Population"/> particles uniform in the bounds.</summary>
    public ParticleSwarm(int dimension, ParticleSwarmOptions? options = null)
    {
        _o = options ?? new();
        _o.Validate(dimension);
        Dimension = dimension;
        _rng = new Xoshiro((ulong)(uint)_o.Seed);
        int n = _o.Population;
        _x = new double[n][]; _v = new double[n][]; _pbest = new double[n][];
        _pbestScore = new double?[n];
        _history = new List<double>[n];
        for (int p = 0; p < n; p++)
        {
            _x[p] = new double[dimension];
            for (int i = 0; i < dimension; i++) _x[p][i] = _o.Lower(i) + _rng.NextDouble() * (_o.Upper(i) - _o.Lower(i));
            _pbest[p] = (double[])_x[p].Clone();
            _history[p] = [];
        }
        for (int p = 0; p < n; p++) _v[p] = _o.StartingVelocity == StartingVelocity.Zero ? new double[dimension] : RandomVelocity();
        _step = _o.StepLength;
    }

    private ParticleSwarm(ParticleSwarmOptions options, ParticleSwarmState s)
    {
        _o = options;
        Dimension = s.Dimension;
        _x = Copy(s.Positions); _v = Copy(s.Velocities); _pbest = Copy(s.PersonalBest);
        _pbestScore = (double?[])s.PersonalBestScores.Clone();
        _history = s.Histories.Select(h => h.ToList()).ToArray();
        _bestHistory.AddRange(s.BestHistory);
        _gbest = s.GlobalBest is null ? null : (double[])s.GlobalBest.Clone();
        _gworst = s.GlobalWorst is null ? null : (double[])s.GlobalWorst.Clone();
        _gbestScore = s.GlobalBestScore; _gworstScore = s.GlobalWorstScore;
        _step = s.StepLength;
        Iteration = s.Iteration; Finished = s.Finished;
        _rng = Xoshiro.FromState(s.Random);
    }

    /// <summary>Coordinates per particle.</summary>
    public int Dimension { get; }
    /// <summary>The settings.</summary>
    public ParticleSwarmOptions Options => _o;
    /// <summary>Iterations done (calls of <see cref="Tell"/>).</summary>
    public int Iteration { get; private set; }
    /// <summary>True once patience or the iteration limit ended the search.</summary>
    public bool Finished { get; private set; }
    /// <summary>The particles to evaluate next (copies).</summary>
    public IReadOnlyList<double[]> Positions => _x.Select(x => (double[])x.Clone()).ToList();
    /// <summary>The best position so far (null before the first <see cref="Tell"/>).</summary>
    public double[]? Best => _gbest is null ? null : (double[])_gbest.Clone();
    /// <summary>The best score so far (null before the first <see cref="Tell"/>).</summary>
    public double? BestScore => _gbestScore;

    /// <summary>
    /// Records the scores of <see cref="Positions"/> (higher is better) and moves the swarm; returns true when the search
    /// has ended (the swarm's best did not improve for <see cref="ParticleSwarmOptions.Patience"/> iterations, or
    /// <see cref="ParticleSwarmOptions.MaxIterations"/> were done).
    /// </summary>
    public bool Tell(IReadOnlyList<double> scores)
    {
        if (Finished) throw new InvalidOperationException("the swarm search has finished");
        if (scores.Count != _x.Length) throw new ArgumentException($"expected {_x.Length} scores (one per particle), got {scores.Count}");
        var sc = scores.Select(v => double.IsFinite(v) ? v : double.NegativeInfinity).ToArray();
        for (int p = 0; p < sc.Length; p++)
        {
            _history[p].Add(sc[p]);
            if (_pbestScore[p] is null || sc[p] > _pbestScore[p]) { _pbestScore[p] = sc[p]; _pbest[p] = (double[])_x[p].Clone(); }
        }
        int best = ArgBy(sc, (a, b) => a > b), worst = ArgBy(sc, (a, b) => a < b);
        if (_gbestScore is null || sc[best] > _gbestScore) { _gbestScore = sc[best]; _gbest = (double[])_x[best].Clone(); }
        if (_gworstScore is null || sc[worst] < _gworstScore) { _gworstScore = sc[worst]; _gworst = (double[])_x[worst].Clone(); }
        _bestHistory.Add(_gbestScore.Value);
        Iteration++;

        if (Stalled(_bestHistory, _o.Patience) || Iteration >= _o.MaxIterations) return Finished = true;

        for (int p = 0; p < _x.Length; p++)
        {
            if (Stalled(_history[p], _o.RestartPatience))
            {
                _x[p] = (double[])_pbest[p].Clone();
                _v[p] = RandomVelocity();
                continue;
            }
            double rw = 1, rp = 1, rs = 1, rb = 1;
            if (_o.WeightRandomness) { rw = _rng.NextDouble(); rp = _rng.NextDouble(); rs = _rng.NextDouble(); rb = _rng.NextDouble(); }
            double w = _o.Inertia * rw, c = _o.CognitiveCoeff * rp, s = _o.SocialCoeff * rs, b = _o.RepelTerm ? _o.RepelCoeff * rb : 0;
            if (_o.NormalizeWeights)
            {
                double sum = w + c + s + b;
                if (sum <= 0) continue; // every random factor drew 0: this particle stays this step
                w /= sum; c /= sum; s /= sum; b /= sum;
            }
            for (int i = 0; i < Dimension; i++)
            {
                double x = _x[p][i];
                _v[p][i] = _v[p][i] * w + (_pbest[p][i] - x) * c + (_gbest![i] - x) * s + (x - _gworst![i]) * b;
                double nx = x + _v[p][i] * _step;
                _x[p][i] = _o.Clamp ? Math.Clamp(nx, _o.Lower(i), _o.Upper(i)) : nx;
            }
        }
        _step = Math.Max(_step * _o.StepLengthFactor, _o.MinimumStepLength);
        return false;
    }

    /// <summary>
    /// Runs the whole search: scores every particle with <paramref name="evaluate"/> (its arguments: position, particle index,
    /// cancellation; at most <paramref name="parallelism"/> at once), reports each iteration, and returns the best position.
    /// Scores are matched to particles by index, so the result does not depend on the order evaluations finish in.
    /// </summary>
    public async Task<(double[] Best, double Score)> OptimizeAsync(Func<double[], int, CancellationToken, ValueTask<double>> evaluate,
        IProgress<SwarmProgress>? progress = null, int parallelism = 1, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(evaluate);
        while (!Finished)
        {
            var positions = Positions;
            var scores = new double[positions.Count];
            await Parallel.ForEachAsync(Enumerable.Range(0, positions.Count),
                new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, parallelism), CancellationToken = cancellationToken },
                async (p, ct) => scores[p] = await evaluate(positions[p], p, ct));
            bool stop = Tell(scores);
            progress?.Report(new(Iteration, _o.MaxIterations, _gbestScore!.Value, scores.Max(), scores.Average(), stop));
        }
        return (Best!, BestScore!.Value);
    }

    /// <summary>A snapshot to persist (JSON) and <see cref="Restore"/> later.</summary>
    public ParticleSwarmState State => new()
    {
        Dimension = Dimension, Iteration = Iteration, Finished = Finished, StepLength = _step,
        Positions = Copy(_x), Velocities = Copy(_v), PersonalBest = Copy(_pbest), PersonalBestScores = (double?[])_pbestScore.Clone(),
        Histories = _history.Select(h => h.ToArray()).ToArray(), BestHistory = [.. _bestHistory],
        GlobalBest = _gbest is null ? null : (double[])_gbest.Clone(), GlobalBestScore = _gbestScore,
        GlobalWorst = _gworst is null ? null : (double[])_gworst.Clone(), GlobalWorstScore = _gworstScore,
        Random = _rng.State,
    };

    /// <summary>Continues a search from <paramref name="state"/> with the same <paramref name="options"/> it was started with.</summary>
    public static ParticleSwarm Restore(ParticleSwarmState state, ParticleSwarmOptions options)
    {
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate(state.Dimension);
        int n = options.Population;
        bool ok = state.Positions.Length == n && state.Velocities.Length == n && state.PersonalBest.Length == n
                  && state.PersonalBestScores.Length == n && state.Histories.Length == n && state.Random.Length == 4
                  && state.Positions.Concat(state.Velocities).Concat(state.PersonalBest).All(a => a.Length == state.Dimension)
                  && (state.GlobalBest is null || state.GlobalBest.Length == state.Dimension)
                  && (state.GlobalWorst is null || state.GlobalWorst.Length == state.Dimension)
                  && (state.Iteration == 0 || state.GlobalBest is not null && state.GlobalWorst is not null);
        if (!ok) throw new ConfigException($"particle swarm state does not match the options (population {n}, dimension {state.Dimension})");
        return new ParticleSwarm(options, state);
    }

    private double[] RandomVelocity()
    {
        var v = new double[Dimension];
        for (int i = 0; i < Dimension; i++) v[i] = (_rng.NextDouble() * 2 - 1) * (_o.Upper(i) - _o.Lower(i)) / 2;
        return v;
    }

    /// <summary>The last score did not beat the best of the <paramref name="patience"/> - 1 before it.</summary>
    private static bool Stalled(List<double> history, int patience)
    {
        if (history.Count <= patience) return false;
        double last = history[^1], before = double.NegativeInfinity;
        for (int i = history.Count - patience; i < history.Count - 1; i++) before = Math.Max(before, history[i]);
        return last <= before;
    }

    private static int ArgBy(double[] v, Func<double, double, bool> better)
    {
        int k = 0;
        for (int i = 1; i < v.Length; i++) if (better(v[i], v[k])) k = i;
        return k;
    }

    private static double[][] Copy(double[][] a) => a.Select(x => (double[])x.Clone()).ToArray();

    /// <summary>xoshiro256** seeded through SplitMix64: small, fast, and its whole state is four numbers (serializable).</summary>
    private sealed class Xoshiro
    {
        private ulong _s0, _s1, _s2, _s3;

        public Xoshiro(ulong seed)
        {
            ulong Next() { seed += 0x9E3779B97F4A7C15; ulong z = seed; z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB; return z ^ (z >> 31); }
            _s0 = Next(); _s1 = Next(); _s2 = Next(); _s3 = Next();
        }

        private Xoshiro() { }

        public static Xoshiro FromState(ulong[] s)
        {
            if (s.Length != 4 || s.All(x => x == 0)) throw new ConfigException("particle swarm state: invalid random generator state");
            return new Xoshiro { _s0 = s[0], _s1 = s[1], _s2 = s[2], _s3 = s[3] };
        }

        public ulong[] State => [_s0, _s1, _s2, _s3];

        public double NextDouble()
        {
            ulong result = RotateLeft(_s1 * 5, 7) * 9, t = _s1 << 17;
            _s2 ^= _s0; _s3 ^= _s1; _s1 ^= _s2; _s0 ^= _s3; _s2 ^= t; _s3 = RotateLeft(_s3, 45);
            return (result >> 11) * (1.0 / (1UL << 53));
        }

        private static ulong RotateLeft(ulong x, int k) => (x << k) | (x >> (64 - k));
    }
}
