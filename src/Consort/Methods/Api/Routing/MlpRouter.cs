namespace Consort.Methods.Api.Routing;

/// <summary>Settings of the <c>mlp</c> router.</summary>
/// <param name="Hidden">Hidden units.</param>
/// <param name="Epochs">Full-batch Adam steps.</param>
/// <param name="LearningRate">Adam step size.</param>
/// <param name="WeightDecay">L2 penalty.</param>
public sealed record MlpRouterOptions(int Hidden = 64, int Epochs = 300, double LearningRate = 1e-2, double WeightDecay = 1e-4);

/// <summary>
/// <c>mlp</c>: a one-hidden-layer network (ReLU) from the query embedding to one output per member, regressing each
/// member's observed utility (mean squared error, full-batch Adam, seeded initialisation).
/// </summary>
public sealed class MlpRouter : Router
{
    private readonly Var _w1, _b1, _w2, _b2;

    private MlpRouter(IReadOnlyList<string> models, int dim, Var w1, Var b1, Var w2, Var b2) : base(models, dim)
    {
        _w1 = w1; _b1 = b1; _w2 = w2; _b2 = b2;
    }

    /// <summary>Trains on <paramref name="utility"/> ([query][model]).</summary>
    public static MlpRouter Train(RoutingDataset data, double[][] utility, MlpRouterOptions o, int seed)
    {
        if (o.Hidden < 1 || o.Epochs < 1 || !(o.LearningRate > 0) || o.WeightDecay < 0) throw new ArgumentException("mlp: hidden and epochs >= 1, learning rate > 0, weight decay >= 0");
        int n = data.Count, d = data.Dimension, m = data.Models.Count;
        var init = new Init(seed);
        var r = new MlpRouter(data.Models, d, init.LinearWeight(d, o.Hidden), init.LinearBias(d, o.Hidden), init.LinearWeight(o.Hidden, m), init.LinearBias(o.Hidden, m));
        var x = new Var(n, d, data.Embeddings.SelectMany(e => e).ToArray());
        var targets = utility.SelectMany(u => u.Select(v => (float)v)).ToArray();
        var adam = new Adam([r._w1, r._b1, r._w2, r._b2], (float)o.LearningRate, (float)o.WeightDecay);
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
        s.Set("w1", _w1.Value); s.Set("b1", _b1.Value); s.Set("w2", _w2.Value); s.Set("b2", _b2.Value);
    }

    internal static MlpRouter Restore(IReadOnlyList<string> models, int dim, RouterState s)
    {
        int h = s.Int("hidden"), m = models.Count;
        return new MlpRouter(models, dim, new Var(dim, h, s.Floats("w1", dim * h)), new Var(1, h, s.Floats("b1", h)),
            new Var(h, m, s.Floats("w2", h * m)), new Var(1, m, s.Floats("b2", m)));
    }
}
