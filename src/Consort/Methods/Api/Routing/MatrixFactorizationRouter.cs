namespace Consort.Methods.Api.Routing;

/// <summary>Settings of the <c>mf</c> router; defaults are RouteLLM's training script's.</summary>
/// <param name="Dim">Latent width of model and projected query vectors.</param>
/// <param name="Epochs">Passes over the preference pairs.</param>
/// <param name="BatchSize">Pairs per Adam step.</param>
/// <param name="LearningRate">Adam step size.</param>
/// <param name="WeightDecay">L2 penalty (added to the gradient, as torch's Adam does).</param>
/// <param name="Alpha">Std of the Gaussian noise added to query embeddings while training.</param>
public sealed record MfRouterOptions(int Dim = 128, int Epochs = 100, int BatchSize = 64, double LearningRate = 3e-4, double WeightDecay = 1e-5, double Alpha = 0.1);

/// <summary>
/// <c>mf</c>: RouteLLM's matrix factorization. Each member has a learned vector <c>P_m</c> (L2-normalized), the
/// query embedding is projected to the same width, and the score of member m is <c>w · (P_m ⊙ proj(q))</c>.
/// Trained on preference pairs from the dev outcomes (for each query, every pair of members whose utilities differ;
/// the better one "wins"): binary cross-entropy of <c>w · ((P_win − P_lose) ⊙ proj(q))</c> against 1, so that
/// sigmoid(score_a − score_b) is the probability that a beats b on the query.
/// </summary>
public sealed class MatrixFactorizationRouter : Router
{
    private readonly Var _p, _proj, _classifier;

    private MatrixFactorizationRouter(IReadOnlyList<string> models, int dim, Var p, Var proj, Var classifier) : base(models, dim)
    {
        _p = p; _proj = proj; _classifier = classifier;
    }

    /// <summary>Trains on preference pairs drawn from <paramref name="utility"/>.</summary>
    public static MatrixFactorizationRouter Train(RoutingDataset data, double[][] utility, MfRouterOptions o, int seed)
    {
        if (o.Dim < 1 || o.Epochs < 1 || o.BatchSize < 1 || !(o.LearningRate > 0) || o.WeightDecay < 0 || o.Alpha < 0)
            throw new ArgumentException("mf: dim, epochs and batch size >= 1, learning rate > 0, weight decay and alpha >= 0");
        int d = data.Dimension, m = data.Models.Count;
        var init = new Init(seed);
        var r = new MatrixFactorizationRouter(data.Models, d, init.Normal(m, o.Dim), init.LinearWeight(d, o.Dim), init.LinearWeight(o.Dim, 1));
        var pairs = new List<(int Win, int Lose, int Query)>();
        for (int i = 0; i < data.Count; i++)
            for (int a = 0; a < m; a++)
                for (int b = 0; b < m; b++)
                    if (utility[i][a] > utility[i][b]) pairs.Add((a, b, i));
        if (pairs.Count == 0) return r; // every member equally good everywhere: nothing to learn, all scores tie
        var adam = new Adam([r._p, r._proj, r._classifier], (float)o.LearningRate, (float)o.WeightDecay);
        var tape = new Tape();
        var order = Enumerable.Range(0, pairs.Count).ToArray();
        for (int epoch = 0; epoch < o.Epochs; epoch++)
        {
            init.Random.Shuffle(order);
            for (int start = 0; start < order.Length; start += o.BatchSize)
            {
                var batch = order.Skip(start).Take(o.BatchSize).Select(k => pairs[k]).ToArray();
                var q = new Var(batch.Length, d);
                for (int j = 0; j < batch.Length; j++)
                {
                    var row = q.Row(j);
                    data.Embeddings[batch[j].Query].CopyTo(row);
                    for (int k = 0; k < d; k++) row[k] += (float)o.Alpha * init.Gaussian();
                }
                var win = tape.RowNormalize(tape.Gather(r._p, batch.Select(b => b.Win).ToArray()));
                var lose = tape.RowNormalize(tape.Gather(r._p, batch.Select(b => b.Lose).ToArray()));
                var logits = tape.MatMul(tape.Mul(tape.Sub(win, lose), tape.MatMul(q, r._proj)), r._classifier);
                adam.ZeroGrad();
                tape.Backward(tape.BceWithLogits(logits, Enumerable.Repeat(1f, batch.Length).ToArray()));
                adam.Step();
            }
        }
        return r;
    }

    /// <inheritdoc />
    public override string Kind => "mf";

    /// <inheritdoc />
    protected override double[] Score(ReadOnlySpan<float> embedding)
    {
        var t = new Tape { Recording = false };
        int m = Models.Count;
        var q = t.MatMul(new Var(1, Dimension, embedding.ToArray()), _proj);
        var qs = t.Gather(q, new int[m]);
        var scores = t.MatMul(t.Mul(t.RowNormalize(_p), qs), _classifier);
        return scores.Value.Select(v => (double)v).ToArray();
    }

    internal override void Save(RouterState s)
    {
        s.Set("dim", _p.Cols);
        s.Set("p", _p.Value); s.Set("proj", _proj.Value); s.Set("classifier", _classifier.Value);
    }

    internal static MatrixFactorizationRouter Restore(IReadOnlyList<string> models, int dim, RouterState s)
    {
        int k = s.Int("dim");
        return new MatrixFactorizationRouter(models, dim, new Var(models.Count, k, s.Floats("p", models.Count * k)),
            new Var(dim, k, s.Floats("proj", dim * k)), new Var(k, 1, s.Floats("classifier", k)));
    }
}
