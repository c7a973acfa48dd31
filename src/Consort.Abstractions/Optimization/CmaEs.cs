namespace Consort.Optimization;

/// <summary>Settings of a <see cref="CmaEs"/> search.</summary>
public sealed record CmaEsOptions
{
    /// <summary>Candidates per generation (λ); default 4 + ⌊3 ln n⌋.</summary>
    public int? PopulationSize { get; init; }
    /// <summary>Lower bound per coordinate (null: unbounded); candidates are sampled inside the box.</summary>
    public IReadOnlyList<double>? LowerBounds { get; init; }
    /// <summary>Upper bound per coordinate (null: unbounded).</summary>
    public IReadOnlyList<double>? UpperBounds { get; init; }
    /// <summary>Seed of the sampler: the same seed, start and fitness values give the same candidates.</summary>
    public ulong Seed { get; init; }
    /// <summary>Stop when σ times the largest axis of the search distribution falls below this.</summary>
    public double TolX { get; init; } = 1e-11;
    /// <summary>Stop when the best fitness of the last generations varies less than this.</summary>
    public double TolFun { get; init; } = 1e-12;
}

/// <summary>
/// Everything a <see cref="CmaEs"/> needs to continue where it was: a plain, JSON-serializable record (arrays of
/// numbers), so a search survives a kill when its state is saved after each generation (and after each Ask).
/// Infinite fitness values (none yet, failed candidates) are written as "Infinity" by System.Text.Json.
/// </summary>
[System.Text.Json.Serialization.JsonNumberHandling(System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals)]
public sealed record CmaEsState
{
    /// <summary>Problem dimension n.</summary>
    public int Dimension { get; init; }
    /// <summary>Candidates per generation λ.</summary>
    public int PopulationSize { get; init; }
    /// <summary>Generations told so far.</summary>
    public int Generation { get; init; }
    /// <summary>Fitness evaluations told so far.</summary>
    public long Evaluations { get; init; }
    /// <summary>Mean of the search distribution.</summary>
    public double[] Mean { get; init; } = [];
    /// <summary>Step size σ.</summary>
    public double Sigma { get; init; }
    /// <summary>Covariance matrix C, row-major n×n.</summary>
    public double[] Covariance { get; init; } = [];
    /// <summary>Evolution path of C.</summary>
    public double[] PathC { get; init; } = [];
    /// <summary>Evolution path of σ.</summary>
    public double[] PathSigma { get; init; } = [];
    /// <summary>Lower bounds, or null.</summary>
    public double[]? LowerBounds { get; init; }
    /// <summary>Upper bounds, or null.</summary>
    public double[]? UpperBounds { get; init; }
    /// <summary>Sampler state (xoshiro256**).</summary>
    public ulong[] Random { get; init; } = [];
    /// <summary>Candidates asked but not told yet (the same ones come back from the next Ask), row per candidate.</summary>
    public double[][]? Pending { get; init; }
    /// <summary>Best candidate told so far, or null.</summary>
    public double[]? BestSolution { get; init; }
    /// <summary>Its fitness (+∞ before any).</summary>
    public double BestFitness { get; init; } = double.PositiveInfinity;
    /// <summary>Best fitness of each recent generation (for the TolFun stop).</summary>
    public double[] RecentBest { get; init; } = [];
    /// <summary>TolX of the options.</summary>
    public double TolX { get; init; }
    /// <summary>TolFun of the options.</summary>
    public double TolFun { get; init; }
}

/// <summary>
/// CMA-ES (Hansen's covariance matrix adaptation evolution strategy, (μ/μ_w, λ) with rank-one and rank-μ updates
/// and cumulative step-size adaptation), for minimizing a black-box function of a few to a few hundred variables.
/// Ask for a generation of candidates, evaluate them however you like (in parallel, resumably), tell their
/// fitness (lower is better). Optional box bounds: candidates are resampled, then clipped, into the box, and the
/// distribution is updated with the candidates as evaluated. Seeded, backend-free, and its whole state is a
/// serializable record (<see cref="ExportState"/>, <see cref="FromState"/>).
/// </summary>
public sealed class CmaEs
{
    private readonly int _n, _lambda, _mu;
    private readonly double[] _weights;
    private readonly double _muEff, _cSigma, _dSigma, _cc, _c1, _cMu, _chiN;
    private double[] _mean;
    private double _sigma;
    private readonly double[,] _c;
    private double[,] _b;
    private double[] _d;
    private double[] _pc, _ps;
    private readonly double[]? _lower, _upper;
    private readonly ulong[] _rng;
    private double[][]? _pending;
    private readonly List<double> _recentBest;
    private readonly double _tolX, _tolFun;

    /// <summary>Starts a search at <paramref name="mean"/> with step size <paramref name="sigma"/>.</summary>
    public CmaEs(IReadOnlyList<double> mean, double sigma, CmaEsOptions? options = null)
    {
        options ??= new CmaEsOptions();
        if (mean.Count < 1) throw new ArgumentException("the search needs at least one variable", nameof(mean));
        if (!(sigma > 0) || !double.IsFinite(sigma)) throw new ArgumentOutOfRangeException(nameof(sigma), sigma, "sigma must be a positive finite number");
        if (mean.Any(x => !double.IsFinite(x))) throw new ArgumentException("the start must be finite", nameof(mean));
        _n = mean.Count;
        _lambda = options.PopulationSize ?? 4 + (int)Math.Floor(3 * Math.Log(_n));
        if (_lambda < 2) throw new ArgumentOutOfRangeException(nameof(options), _lambda, "the population needs at least 2 candidates");
        _lower = Check(options.LowerBounds, "lower");
        _upper = Check(options.UpperBounds, "upper");
        for (int i = 0; i < _n; i++)
            if (_lower is not null && _upper is not null && !(_lower[i] < _upper[i])) throw new ArgumentException($"bounds of variable {i}: lower {_lower[i]} must be below upper {_upper[i]}");
        _mean = Clip(mean.ToArray());
        _sigma = sigma;
        _c = new double[_n, _n];
        for (int i = 0; i < _n; i++) _c[i, i] = 1;
        _pc = new double[_n]; _ps = new double[_n];
        _rng = SeedState(options.Seed);
        _recentBest = [];
        _tolX = options.TolX; _tolFun = options.TolFun;
        (_mu, _weights, _muEff, _cSigma, _dSigma, _cc, _c1, _cMu, _chiN) = Constants(_n, _lambda);
        (_b, _d) = Decompose(_c);
        BestFitness = double.PositiveInfinity;
    }

    private CmaEs(CmaEsState s)
    {
        _n = s.Dimension; _lambda = s.PopulationSize;
        if (_n < 1 || _lambda < 2 || s.Mean.Length != _n || s.Covariance.Length != _n * _n || s.PathC.Length != _n || s.PathSigma.Length != _n || s.Random.Length != 4)
            throw new ArgumentException("the CMA-ES state is inconsistent (sizes do not match its dimension)");
        (_mu, _weights, _muEff, _cSigma, _dSigma, _cc, _c1, _cMu, _chiN) = Constants(_n, _lambda);
        _mean = (double[])s.Mean.Clone();
        _sigma = s.Sigma;
        _c = new double[_n, _n];
        for (int i = 0; i < _n; i++) for (int j = 0; j < _n; j++) _c[i, j] = s.Covariance[i * _n + j];
        _pc = (double[])s.PathC.Clone(); _ps = (double[])s.PathSigma.Clone();
        _lower = s.LowerBounds?.ToArray(); _upper = s.UpperBounds?.ToArray();
        _rng = (ulong[])s.Random.Clone();
        _pending = s.Pending?.Select(x => (double[])x.Clone()).ToArray();
        Generation = s.Generation; Evaluations = s.Evaluations;
        BestSolution = s.BestSolution?.ToArray(); BestFitness = s.BestFitness;
        _recentBest = [.. s.RecentBest];
        _tolX = s.TolX; _tolFun = s.TolFun;
        (_b, _d) = Decompose(_c);
    }

    /// <summary>Continues a search from a saved state.</summary>
    public static CmaEs FromState(CmaEsState state) => new(state);

    /// <summary>The state to save (and later pass to <see cref="FromState"/>).</summary>
    public CmaEsState ExportState()
    {
        var cov = new double[_n * _n];
        for (int i = 0; i < _n; i++) for (int j = 0; j < _n; j++) cov[i * _n + j] = _c[i, j];
        return new CmaEsState
        {
            Dimension = _n, PopulationSize = _lambda, Generation = Generation, Evaluations = Evaluations,
            Mean = (double[])_mean.Clone(), Sigma = _sigma, Covariance = cov, PathC = (double[])_pc.Clone(), PathSigma = (double[])_ps.Clone(),
            LowerBounds = _lower?.ToArray(), UpperBounds = _upper?.ToArray(), Random = (ulong[])_rng.Clone(),
            Pending = _pending?.Select(x => (double[])x.Clone()).ToArray(), BestSolution = BestSolution?.ToArray(), BestFitness = BestFitness,
            RecentBest = [.. _recentBest], TolX = _tolX, TolFun = _tolFun,
        };
    }

    /// <summary>Number of variables.</summary>
    public int Dimension => _n;
    /// <summary>Candidates per generation (λ).</summary>
    public int PopulationSize => _lambda;
    /// <summary>Generations told so far.</summary>
    public int Generation { get; private set; }
    /// <summary>Fitness values told so far.</summary>
    public long Evaluations { get; private set; }
    /// <summary>Current mean of the search distribution (the best estimate of the optimum).</summary>
    public IReadOnlyList<double> Mean => _mean;
    /// <summary>Current step size σ.</summary>
    public double Sigma => _sigma;
    /// <summary>Best candidate told so far (null before the first Tell).</summary>
    public double[]? BestSolution { get; private set; }
    /// <summary>Fitness of <see cref="BestSolution"/>.</summary>
    public double BestFitness { get; private set; }
    /// <summary>Whether the current generation's candidates were asked and await their fitness.</summary>
    public bool HasPending => _pending is not null;

    /// <summary>
    /// Why the search should stop (σ·max axis below TolX, best fitness flat over the last generations, or a degenerate
    /// distribution), or null to go on.
    /// </summary>
    public string? StopReason
    {
        get
        {
            if (!double.IsFinite(_sigma) || _d.Any(x => !double.IsFinite(x))) return "the distribution degenerated";
            if (_sigma * _d.Max() < _tolX) return $"step size below TolX ({_tolX})";
            int window = 10 + (int)Math.Ceiling(30.0 * _n / _lambda);
            if (_recentBest.Count >= window)
            {
                var last = _recentBest.Skip(_recentBest.Count - window).ToList();
                if (last.Max() - last.Min() < _tolFun) return $"best fitness flat over {window} generations (TolFun {_tolFun})";
            }
            return null;
        }
    }

    /// <summary>
    /// The candidates of the current generation: <see cref="PopulationSize"/> points inside the bounds. Asking again
    /// before <see cref="Tell"/> returns the same candidates (they are part of the state, so a resumed search
    /// re-asks exactly what it had asked).
    /// </summary>
    public IReadOnlyList<double[]> Ask()
    {
        if (_pending is null)
        {
            _pending = new double[_lambda][];
            for (int k = 0; k < _lambda; k++)
            {
                double[] x = Sample();
                for (int attempt = 0; attempt < 20 && !Inside(x); attempt++) x = Sample();
                _pending[k] = Clip(x);
            }
        }
        return _pending.Select(x => (double[])x.Clone()).ToArray();
    }

    /// <summary>
    /// Updates the distribution with the fitness (lower is better) of the candidates from <see cref="Ask"/>, in the
    /// same order. NaN counts as the worst value.
    /// </summary>
    public void Tell(IReadOnlyList<double[]> candidates, IReadOnlyList<double> fitness)
    {
        if (_pending is null) throw new InvalidOperationException("Tell needs the candidates of an Ask first");
        if (candidates.Count != _lambda || fitness.Count != _lambda)
            throw new ArgumentException($"expected {_lambda} candidates and fitness values, got {candidates.Count} and {fitness.Count}");
        for (int k = 0; k < _lambda; k++)
            if (candidates[k].Length != _n || !candidates[k].AsSpan().SequenceEqual(_pending[k]))
                throw new ArgumentException($"candidate {k} is not the one Ask returned");
        var f = fitness.Select(v => double.IsNaN(v) ? double.PositiveInfinity : v).ToArray();
        var order = Enumerable.Range(0, _lambda).OrderBy(k => f[k]).ThenBy(k => k).ToArray();
        if (f[order[0]] < BestFitness || BestSolution is null) { BestFitness = f[order[0]]; BestSolution = (double[])_pending[order[0]].Clone(); }
        _recentBest.Add(f[order[0]]);
        if (_recentBest.Count > 200) _recentBest.RemoveAt(0);

        // y_k = (x_k − m) / σ of the evaluated (repaired) candidates; the weighted mean of the μ best.
        var y = _pending.Select(x => x.Select((v, i) => (v - _mean[i]) / _sigma).ToArray()).ToArray();
        var yw = new double[_n];
        for (int i = 0; i < _mu; i++)
            for (int j = 0; j < _n; j++) yw[j] += _weights[i] * y[order[i]][j];
        var oldMean = _mean;
        _mean = Clip(oldMean.Select((m, j) => m + _sigma * yw[j]).ToArray());
        // Step actually taken (after clipping), in σ units.
        for (int j = 0; j < _n; j++) yw[j] = (_mean[j] - oldMean[j]) / _sigma;

        // σ path: p_σ ← (1 − c_σ) p_σ + √(c_σ (2 − c_σ) μ_eff) C^{-1/2} y_w.
        var invSqrt = InvSqrtTimes(yw);
        double cs = Math.Sqrt(_cSigma * (2 - _cSigma) * _muEff);
        for (int j = 0; j < _n; j++) _ps[j] = (1 - _cSigma) * _ps[j] + cs * invSqrt[j];
        double psNorm = Math.Sqrt(_ps.Sum(v => v * v));
        bool hSigma = psNorm / Math.Sqrt(1 - Math.Pow(1 - _cSigma, 2 * (Generation + 1))) < (1.4 + 2.0 / (_n + 1)) * _chiN;
        double cc = Math.Sqrt(_cc * (2 - _cc) * _muEff);
        for (int j = 0; j < _n; j++) _pc[j] = (1 - _cc) * _pc[j] + (hSigma ? cc * yw[j] : 0);

        // C ← (1 − c1 − cμ + δ) C + c1 p_c p_cᵀ + cμ Σ w_i y_i y_iᵀ.
        double delta = hSigma ? 0 : _c1 * _cc * (2 - _cc);
        for (int a = 0; a < _n; a++)
            for (int b = 0; b <= a; b++)
            {
                double rankMu = 0;
                for (int i = 0; i < _mu; i++) rankMu += _weights[i] * y[order[i]][a] * y[order[i]][b];
                double v = (1 - _c1 - _cMu + delta) * _c[a, b] + _c1 * _pc[a] * _pc[b] + _cMu * rankMu;
                _c[a, b] = v; _c[b, a] = v;
            }
        _sigma *= Math.Exp(_cSigma / _dSigma * (psNorm / _chiN - 1));
        if (_sigma > 1e300) _sigma = 1e300;
        (_b, _d) = Decompose(_c);
        Generation++;
        Evaluations += _lambda;
        _pending = null;
    }

    private double[]? Check(IReadOnlyList<double>? bounds, string which)
    {
        if (bounds is null) return null;
        if (bounds.Count != _n) throw new ArgumentException($"{which} bounds have {bounds.Count} values for {_n} variables");
        if (bounds.Any(double.IsNaN)) throw new ArgumentException($"{which} bounds contain NaN");
        return bounds.ToArray();
    }

    private bool Inside(double[] x)
    {
        for (int i = 0; i < _n; i++)
            if ((_lower is not null && x[i] < _lower[i]) || (_upper is not null && x[i] > _upper[i])) return false;
        return true;
    }

    private double[] Clip(double[] x)
    {
        for (int i = 0; i < _n; i++)
        {
            if (_lower is not null && x[i] < _lower[i]) x[i] = _lower[i];
            if (_upper is not null && x[i] > _upper[i]) x[i] = _upper[i];
        }
        return x;
    }

    // x = m + σ B D z with z ~ N(0, I).
    private double[] Sample()
    {
        var z = new double[_n];
        for (int i = 0; i < _n; i++) z[i] = _d[i] * Gaussian();
        var x = new double[_n];
        for (int i = 0; i < _n; i++)
        {
            double s = 0;
            for (int j = 0; j < _n; j++) s += _b[i, j] * z[j];
            x[i] = _mean[i] + _sigma * s;
        }
        return x;
    }

    // C^{-1/2} v = B D^{-1} Bᵀ v.
    private double[] InvSqrtTimes(double[] v)
    {
        var t = new double[_n];
        for (int j = 0; j < _n; j++)
        {
            double s = 0;
            for (int i = 0; i < _n; i++) s += _b[i, j] * v[i];
            t[j] = s / Math.Max(_d[j], 1e-300);
        }
        var r = new double[_n];
        for (int i = 0; i < _n; i++)
        {
            double s = 0;
            for (int j = 0; j < _n; j++) s += _b[i, j] * t[j];
            r[i] = s;
        }
        return r;
    }

    private static (int Mu, double[] Weights, double MuEff, double CSigma, double DSigma, double Cc, double C1, double CMu, double ChiN) Constants(int n, int lambda)
    {
        int mu = lambda / 2;
        var w = Enumerable.Range(1, mu).Select(i => Math.Log(mu + 0.5) - Math.Log(i)).ToArray();
        double sum = w.Sum();
        for (int i = 0; i < mu; i++) w[i] /= sum;
        double muEff = 1 / w.Sum(x => x * x);
        double cSigma = (muEff + 2) / (n + muEff + 5);
        double dSigma = 1 + 2 * Math.Max(0, Math.Sqrt((muEff - 1) / (n + 1)) - 1) + cSigma;
        double cc = (4 + muEff / n) / (n + 4 + 2 * muEff / n);
        double c1 = 2 / ((n + 1.3) * (n + 1.3) + muEff);
        double cMu = Math.Min(1 - c1, 2 * (muEff - 2 + 1 / muEff) / ((n + 2) * (n + 2) + muEff));
        double chiN = Math.Sqrt(n) * (1 - 1.0 / (4 * n) + 1.0 / (21.0 * n * n));
        return (mu, w, muEff, cSigma, dSigma, cc, c1, cMu, chiN);
    }

    // B (eigenvectors as columns) and D (square roots of the eigenvalues) of the symmetric C, by Jacobi rotations.
    private static (double[,] B, double[] D) Decompose(double[,] c)
    {
        int n = c.GetLength(0);
        var a = (double[,])c.Clone();
        var v = new double[n, n];
        for (int i = 0; i < n; i++) v[i, i] = 1;
        for (int sweep = 0; sweep < 60; sweep++)
        {
            double off = 0, diag = 0;
            for (int i = 0; i < n; i++) { diag += a[i, i] * a[i, i]; for (int j = i + 1; j < n; j++) off += a[i, j] * a[i, j]; }
            if (off <= 1e-26 * diag || off == 0) break;
            for (int p = 0; p < n - 1; p++)
                for (int q = p + 1; q < n; q++)
                {
                    if (Math.Abs(a[p, q]) <= 1e-300) continue;
                    double theta = (a[q, q] - a[p, p]) / (2 * a[p, q]);
                    double t = theta == 0 ? 1 : Math.Sign(theta) / (Math.Abs(theta) + Math.Sqrt(theta * theta + 1));
                    double cs = 1 / Math.Sqrt(t * t + 1), sn = t * cs;
                    for (int r = 0; r < n; r++) { double x = a[r, p], y = a[r, q]; a[r, p] = cs * x - sn * y; a[r, q] = sn * x + cs * y; }
                    for (int r = 0; r < n; r++) { double x = a[p, r], y = a[q, r]; a[p, r] = cs * x - sn * y; a[q, r] = sn * x + cs * y; }
                    for (int r = 0; r < n; r++) { double x = v[r, p], y = v[r, q]; v[r, p] = cs * x - sn * y; v[r, q] = sn * x + cs * y; }
                }
        }
        var d = new double[n];
        for (int i = 0; i < n; i++) d[i] = Math.Sqrt(Math.Max(a[i, i], 1e-300));
        return (v, d);
    }

    // xoshiro256** seeded through splitmix64; its four words are the serialized sampler state.
    private static ulong[] SeedState(ulong seed)
    {
        var s = new ulong[4];
        ulong z = seed;
        for (int i = 0; i < 4; i++)
        {
            z += 0x9E3779B97F4A7C15UL;
            ulong x = z;
            x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
            x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
            s[i] = x ^ (x >> 31);
        }
        return s;
    }

    private ulong Next()
    {
        ulong result = RotL(_rng[1] * 5, 7) * 9, t = _rng[1] << 17;
        _rng[2] ^= _rng[0]; _rng[3] ^= _rng[1]; _rng[1] ^= _rng[2]; _rng[0] ^= _rng[3];
        _rng[2] ^= t; _rng[3] = RotL(_rng[3], 45);
        return result;
    }

    private static ulong RotL(ulong x, int k) => (x << k) | (x >> (64 - k));

    private double Uniform() => (Next() >> 11) * (1.0 / (1UL << 53));

    // Box-Muller; one value per pair of uniforms keeps the state to the four words.
    private double Gaussian() => Math.Sqrt(-2 * Math.Log(1 - Uniform())) * Math.Cos(2 * Math.PI * Uniform());
}
