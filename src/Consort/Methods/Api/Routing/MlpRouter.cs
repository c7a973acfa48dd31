namespace Consort.Methods.Api.Routing;

/// <summary>Settings of the <c>mlp</c> router.</summary>
/// <param name="Hidden">Hidden units.</param>
/// <param name="Epochs">Full-batch Adam steps.</param>
/// <param name="LearningRate">Adam step size.</param>
/// <param name="WeightDecay">L2 penalty; null: chosen by cross-validation on the training data (<see cref="MlpRouter.ChooseWeightDecay"/>).</param>
public sealed record MlpRouterOptions(int Hidden = 64, int Epochs = 300, double LearningRate = 1e-2, double? WeightDecay = null);

/// <summary>
/// <c>mlp</c>: a one-hidden-layer network (ReLU) from the query embedding to one output per member, regressing each
/// member's observed utility (mean squared error, full-batch Adam, seeded initialisation). Unless given, the L2
/// penalty is chosen by k-fold cross-validation: a few hundred dev queries are easily memorized, and a barely
/// penalized network turns the noise of members that no embedding can tell apart into large predicted leads, which
/// then outrank the real ones when a threshold sorts queries by the strong member's lead.
/// </summary>
public sealed class MlpRouter : Router
{
    private readonly Var _w1, _b1, _w2, _b2;

    private MlpRouter(IReadOnlyList<string> models, int dim, Var w1, Var b1, Var w2, Var b2) : base(models, dim)
    {
        _w1 = w1; _b1 = b1; _w2 = w2; _b2 = b2;
    }

    /// <summary>L2 penalties <see cref="ChooseWeightDecay"/> tries (half decades around the usual 1e-2).</summary>
    public static readonly IReadOnlyList<double> WeightDecayGrid = [1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1];

    /// <summary>Folds of the cross-validation; datasets under twice this many queries keep the smallest penalty.</summary>
    public const int Folds = 5;

    /// <summary>The L2 penalty this router was trained with (given, or chosen by cross-validation).</summary>
    public double WeightDecay { get; private init; }

    /// <summary>
    /// The penalty of <see cref="WeightDecayGrid"/> with the least held-out mean squared error over <see cref="Folds"/>
    /// seeded folds (ties: the larger penalty, the simpler fit). Held-out error is what a new query sees; it is also
    /// the quantity the network minimizes, so the choice is smooth where held-out routing accuracy would be flat.
    /// </summary>
    public static double ChooseWeightDecay(RoutingDataset data, double[][] utility, MlpRouterOptions o, int seed)
    {
        int n = data.Count, m = data.Models.Count;
        if (n < 2 * Folds) return WeightDecayGrid[0];
        var rng = new Random(seed);
        var order = Enumerable.Range(0, n).ToArray();
        rng.Shuffle(order);
        var fold = new int[n];
        for (int j = 0; j < n; j++) fold[order[j]] = j % Folds;
        double bestWd = WeightDecayGrid[0], bestErr = double.PositiveInfinity;
        foreach (var wd in WeightDecayGrid)
        {
            double err = 0;
            for (int f = 0; f < Folds; f++)
            {
                var train = Enumerable.Range(0, n).Where(i => fold[i] != f).ToArray();
                var sub = new RoutingDataset(data.Models, train.Select(i => data.Embeddings[i]).ToArray(), train.Select(i => data.Quality[i]).ToArray(),
                    train.Select(i => data.Cost[i]).ToArray());
                var r = Train(sub, train.Select(i => utility[i]).ToArray(), o with { WeightDecay = wd }, seed);
                for (int i = 0; i < n; i++)
                {
                    if (fold[i] != f) continue;
                    var p = r.Score(data.Embeddings[i]);
                    for (int k = 0; k < m; k++) err += (p[k] - utility[i][k]) * (p[k] - utility[i][k]);
                }
            }
            if (err <= bestErr * (1 + 1e-9)) { bestErr = err; bestWd = wd; } // ascending grid: a tie goes to the larger penalty
        }
        return bestWd;
    }

    /// <summary>Trains on <paramref name="utility"/> ([query][model]).</summary>
    public static MlpRouter Train(RoutingDataset data, double[][] utility, MlpRouterOptions o, int seed)
    {
        if (o.Hidden < 1 || o.Epochs < 1 || !(o.LearningRate > 0) || o.WeightDecay < 0) throw new ArgumentException("mlp: hidden and epochs >= 1, learning rate > 0, weight decay >= 0");
        double weightDecay = o.WeightDecay ?? ChooseWeightDecay(data, utility, o, seed);
        int n = data.Count, d = data.Dimension, m = data.Models.Count;
        var init = new Init(seed);
        var r = new MlpRouter(data.Models, d, init.LinearWeight(d, o.Hidden), init.LinearBias(d, o.Hidden), init.LinearWeight(o.Hidden, m), init.LinearBias(o.Hidden, m))
            { WeightDecay = weightDecay };
        var x = new Var(n, d, data.Embeddings.SelectMany(e => e).ToArray());
        var targets = utility.SelectMany(u => u.Select(v => (float)v)).ToArray();
        var adam = new Adam([r._w1, r._b1, r._w2, r._b2], (float)o.LearningRate, (float)weightDecay);
        var tape = new Tape();
        for (int epoch = 0; epoch < o.Epochs; epoch++)
        {
            adam.ZeroGrad();
            tape.Backward(tape.Mse(r.Forward(tape, x), targets));
            adam.Step();
        }
        return r;
    }

    private Var Forward(Tape t, Var x) => t.Linear(t.Relu(t.Linear(x, _w1, _b1)), _w2, _b2);

    /// <inheritdoc />
    public override string Kind => "mlp";

    /// <inheritdoc />
    protected override double[] Score(ReadOnlySpan<float> embedding)
    {
        var y = Forward(new Tape { Recording = false }, new Var(1, Dimension, embedding.ToArray()));
        return y.Value.Select(v => (double)v).ToArray();
    }

    internal override void Save(RouterState s)
    {
        s.Set("hidden", _w1.Cols);
        s.Set("weight_decay", WeightDecay);
        s.Set("w1", _w1.Value); s.Set("b1", _b1.Value); s.Set("w2", _w2.Value); s.Set("b2", _b2.Value);
    }

    internal static MlpRouter Restore(IReadOnlyList<string> models, int dim, RouterState s)
    {
        int h = s.Int("hidden"), m = models.Count;
        return new MlpRouter(models, dim, new Var(dim, h, s.Floats("w1", dim * h)), new Var(1, h, s.Floats("b1", h)),
            new Var(h, m, s.Floats("w2", h * m)), new Var(1, m, s.Floats("b2", m))) { WeightDecay = s.OptionalDouble("weight_decay") ?? double.NaN };
    }
}
