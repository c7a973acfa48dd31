namespace Consort.Methods.Api.Routing;

/// <summary>GraphRouter's three trade-offs between performance and cost (MoCo's <c>scenario</c>).</summary>
public enum GraphScenario
{
    /// <summary>"Performance First": utility = quality.</summary>
    [OptionValue("Performance First", "performance_first")] PerformanceFirst,
    /// <summary>"Balance": 0.5·quality − 0.5·cost.</summary>
    [OptionValue("Balance", "balance")] Balance,
    /// <summary>"Cost First": 0.2·quality − 0.8·cost.</summary>
    [OptionValue("Cost First", "cost_first")] CostFirst,
}

/// <summary>Settings of the graph router; names and defaults are MoCo's <c>api_graph_routing</c> ones.</summary>
/// <param name="HiddenFeatures">Width h of aligned features (query and task h each, models 2h).</param>
/// <param name="InEdges">Edge feature count; the edges carry (quality, cost, scenario utility), so it must be 3.</param>
/// <param name="LearningRate">AdamW step size.</param>
/// <param name="WeightDecay">AdamW decoupled weight decay.</param>
/// <param name="TrainEpochs">Optimizer steps.</param>
/// <param name="MaskSamples">Random edge masks averaged per step (MoCo's GNN <c>batch_size</c>).</param>
/// <param name="TrainMaskRate">Share of training edges visible to message passing in each mask; the rest are predicted.</param>
/// <param name="SplitRatio">Train / validation / unused shares of the dev queries (shuffled by the seed first).</param>
/// <param name="Scenario">Trade-off that defines the best edge.</param>
public sealed record GraphRouterOptions(int HiddenFeatures = 8, int InEdges = 3, double LearningRate = 1e-4, double WeightDecay = 1e-4,
    int TrainEpochs = 500, int MaskSamples = 32, double TrainMaskRate = 0.5, double[]? SplitRatio = null, GraphScenario Scenario = GraphScenario.PerformanceFirst)
{
    /// <summary>(quality weight, cost weight) of the scenario.</summary>
    public (double Quality, double Cost) Weights => Scenario switch
    {
        GraphScenario.Balance => (0.5, 0.5),
        GraphScenario.CostFirst => (0.2, 0.8),
        _ => (1.0, 0.0),
    };

    /// <summary>Parses MoCo's scenario names.</summary>
    public static GraphScenario ParseScenario(string name) => name switch
    {
        "Performance First" => GraphScenario.PerformanceFirst,
        "Balance" => GraphScenario.Balance,
        "Cost First" => GraphScenario.CostFirst,
        _ => throw new ArgumentException($"scenario must be one of \"Performance First\", \"Balance\", \"Cost First\", got \"{name}\""),
    };
}

/// <summary>
/// GraphRouter's idea (MoCo's <c>api_graph_routing</c>): a bipartite graph of dev queries and member models, one edge
/// per (query, model) carrying the observed quality, cost and scenario utility. Queries (with the task's
/// embedding) and models (embeddings of their descriptions) are aligned to a common width, two message-passing
/// layers (a general convolution: neighbour messages plus edge features, summed, with a skip connection; batch norm)
/// carry what each model did on which queries into the model nodes, and an edge's score is
/// sigmoid(mean(x_query ⊙ z_model)). Training predicts, for random halves of the training edges, whether the edge
/// is the query's best one while the other half is visible; the epoch with the best validation macro-F1 is kept.
/// A new query needs no edges: its aligned features meet the model nodes computed from the whole dev graph.
/// </summary>
public sealed class GraphRouter : Router
{
    private readonly Var _queryW, _queryB, _taskW, _taskB;
    private readonly float[] _task;
    private readonly Var _models; // M x 2h final model-node embeddings

    private GraphRouter(IReadOnlyList<string> models, int dim, Var queryW, Var queryB, Var taskW, Var taskB, float[] task, Var modelNodes) : base(models, dim)
    {
        _queryW = queryW; _queryB = queryB; _taskW = taskW; _taskB = taskB; _task = task; _models = modelNodes;
    }

    /// <inheritdoc />
    public override string Kind => "graph";

    /// <summary>Validation macro-F1 of the kept epoch (NaN without a validation split).</summary>
    public double ValidationF1 { get; private init; } = double.NaN;

    private sealed class Net
    {
        public required Var QueryW, QueryB, TaskW, TaskB, ModelW, ModelB, EdgeW, EdgeB;
        public required Var[] MsgW, MsgB, EdgeMsgW;
        public required BatchNormState[] Norms;
        public IReadOnlyList<Var> Parameters => [QueryW, QueryB, TaskW, TaskB, ModelW, ModelB, EdgeW, EdgeB, .. MsgW, .. MsgB, .. EdgeMsgW, .. Norms.SelectMany(n => new[] { n.Gamma, n.Beta })];

        public float[][] Snapshot() => [.. Parameters.Select(p => (float[])p.Value.Clone()), .. Norms.SelectMany(n => new[] { (float[])n.RunningMean.Clone(), (float[])n.RunningVar.Clone() })];

        public void Restore(float[][] snapshot)
        {
            var ps = Parameters; int i = 0;
            foreach (var p in ps) snapshot[i++].CopyTo(p.Value, 0);
            foreach (var n in Norms) { snapshot[i++].CopyTo(n.RunningMean, 0); snapshot[i++].CopyTo(n.RunningVar, 0); }
        }
    }

    private sealed record Graph(Var Queries, Var Task, Var ModelText, float[][] EdgeFeatures, int QueryCount, int ModelCount);

    // Aligned node features: queries [task ; query] (2h), then models (2h).
    private static Var Align(Tape t, Net net, Graph g)
    {
        var task = t.Gather(t.Linear(g.Task, net.TaskW, net.TaskB), new int[g.QueryCount]);
        var queries = t.ConcatCols(task, t.Linear(g.Queries, net.QueryW, net.QueryB));
        return t.ConcatRows(queries, t.Linear(g.ModelText, net.ModelW, net.ModelB));
    }

    // Two message-passing layers over the visible query -> model edges.
    private static Var Encode(Tape t, Net net, Graph g, Var x0, IReadOnlyList<int> visible, bool training)
    {
        int m = g.ModelCount;
        var src = visible.Select(e => e / m).ToArray();
        var dst = visible.Select(e => g.QueryCount + e % m).ToArray();
        var features = new Var(visible.Count, 3);
        for (int i = 0; i < visible.Count; i++) g.EdgeFeatures[visible[i]].CopyTo(features.Row(i));
        var edge = t.Relu(t.Linear(features, net.EdgeW, net.EdgeB));
        var x = x0;
        for (int layer = 0; layer < 2; layer++)
        {
            var messages = t.Add(t.Linear(t.Gather(x, src), net.MsgW[layer], net.MsgB[layer]), t.MatMul(edge, net.EdgeMsgW[layer]));
            var conv = t.Add(t.ScatterAdd(messages, dst, x.Rows), x);
            x = t.BatchNorm(conv, net.Norms[layer], training);
            if (layer == 0) x = t.Relu(x);
        }
        return x;
    }

    private static Var EdgeLogits(Tape t, Graph g, Var x0, Var x, IReadOnlyList<int> edges)
    {
        int m = g.ModelCount;
        return t.RowMean(t.Mul(t.Gather(x0, edges.Select(e => e / m).ToArray()), t.Gather(x, edges.Select(e => g.QueryCount + e % m).ToArray())));
    }

    /// <summary>
    /// Trains on the dev outcomes in <paramref name="data"/>, the members' description embeddings and the task
    /// description's embedding. Cost enters through the scenario, normalized like <see cref="RoutingDataset.Utility"/>.
    /// </summary>
    public static GraphRouter Train(RoutingDataset data, IReadOnlyList<float[]> modelEmbeddings, float[] taskEmbedding, GraphRouterOptions o, int seed, Action<string>? log = null)
    {
        int m = data.Models.Count, n = data.Count, h = o.HiddenFeatures;
        if (modelEmbeddings.Count != m) throw new ArgumentException($"{modelEmbeddings.Count} model description embeddings for {m} models");
        if (o.InEdges != 3) throw new ArgumentException($"in_edges must be 3 (each edge carries quality, cost and scenario utility), got {o.InEdges}");
        if (h < 1 || o.TrainEpochs < 1 || o.MaskSamples < 1 || !(o.LearningRate > 0) || o.WeightDecay < 0 || o.TrainMaskRate is <= 0 or >= 1)
            throw new ArgumentException("graph: hidden_features, train_epochs and mask samples >= 1, learning_rate > 0, weight_decay >= 0, train_mask_rate in (0, 1)");
        var split = o.SplitRatio ?? [0.8, 0.1, 0.1];
        if (split.Length != 3 || split.Any(s => s < 0) || split[0] <= 0) throw new ArgumentException("split_ratio must be three non-negative shares with a positive train share");
        int dm = modelEmbeddings[0].Length, dt = taskEmbedding.Length, dq = data.Dimension;
        if (modelEmbeddings.Any(e => e.Length != dm)) throw new ArgumentException("model description embeddings differ in width");

        // Utility per edge and the best edge per query define the labels.
        double costScale = data.MeanCost().Max() is > 0 and var cs ? cs : 1;
        var (wq, wc) = o.Weights;
        var features = new float[n * m][];
        var labels = new float[n * m];
        for (int i = 0; i < n; i++)
        {
            int top = 0; double bestU = double.NegativeInfinity;
            for (int j = 0; j < m; j++)
            {
                double cost = data.Cost[i][j] / costScale, u = wq * data.Quality[i][j] - wc * cost;
                features[i * m + j] = [(float)data.Quality[i][j], (float)cost, (float)u];
                if (u > bestU) { bestU = u; top = j; }
            }
            labels[i * m + top] = 1;
        }

        // Shuffled split of queries (MoCo splits in file order, which puts whole domains in validation).
        var init = new Init(seed);
        var order = Enumerable.Range(0, n).ToArray();
        init.Random.Shuffle(order);
        double total = split.Sum();
        int nTrain = Math.Max(1, (int)(n * split[0] / total)), nVal = Math.Min(n - nTrain, (int)(n * split[1] / total));
        var trainQ = order[..nTrain]; var valQ = order[nTrain..(nTrain + nVal)];
        int[] EdgesOf(IEnumerable<int> qs) => qs.SelectMany(q => Enumerable.Range(q * m, m)).ToArray();
        var trainEdges = EdgesOf(trainQ); var valEdges = EdgesOf(valQ);

        var graph = new Graph(new Var(n, dq, data.Embeddings.SelectMany(e => e).ToArray()), new Var(1, dt, taskEmbedding),
            new Var(m, dm, modelEmbeddings.SelectMany(e => e).ToArray()), features, n, m);
        var net = new Net
        {
            QueryW = init.LinearWeight(dq, h), QueryB = init.LinearBias(dq, h),
            TaskW = init.LinearWeight(dt, h), TaskB = init.LinearBias(dt, h),
            ModelW = init.LinearWeight(dm, 2 * h), ModelB = init.LinearBias(dm, 2 * h),
            EdgeW = init.LinearWeight(3, 3), EdgeB = init.LinearBias(3, 3),
            MsgW = [init.LinearWeight(2 * h, 2 * h), init.LinearWeight(2 * h, 2 * h)],
            MsgB = [init.LinearBias(2 * h, 2 * h), init.LinearBias(2 * h, 2 * h)],
            EdgeMsgW = [init.LinearWeight(3, 2 * h), init.LinearWeight(3, 2 * h)],
            Norms = [new BatchNormState(2 * h), new BatchNormState(2 * h)],
        };
        var adam = new Adam(net.Parameters, (float)o.LearningRate, (float)o.WeightDecay, decoupled: true);
        float[][]? best = null; double bestF1 = double.NegativeInfinity;
        for (int epoch = 0; epoch < o.TrainEpochs; epoch++)
        {
            var t = new Tape();
            var x0 = Align(t, net, graph);
            Var? loss = null;
            for (int s = 0; s < o.MaskSamples; s++)
            {
                var visible = new List<int>(); var predicted = new List<int>();
                foreach (var e in trainEdges) (init.Random.NextDouble() < o.TrainMaskRate ? visible : predicted).Add(e);
                if (predicted.Count == 0) continue;
                var x = Encode(t, net, graph, x0, visible, training: true);
                var l = t.Scale(t.BceWithLogits(EdgeLogits(t, graph, x0, x, predicted), predicted.Select(e => labels[e]).ToArray()), 1f / o.MaskSamples);
                loss = loss is null ? l : t.Add(loss, l);
            }
            if (loss is null) continue;
            adam.ZeroGrad();
            t.Backward(loss);
            adam.Step();

            if (valQ.Length > 0)
            {
                var scores = Predict(net, graph, trainEdges, valEdges);
                double f1 = MacroF1(valQ.Select((q, k) => (Truth: ArgMax(labels.AsSpan(q * m, m)), Guess: ArgMax(scores.AsSpan(k * m, m)))).ToArray(), m);
                if (f1 > bestF1) { bestF1 = f1; best = net.Snapshot(); }
            }
        }
        if (best is not null) net.Restore(best);
        log?.Invoke(valQ.Length > 0 ? $"graph router: best validation macro-F1 {bestF1:F3} over {valQ.Length} queries" : "graph router: no validation split; kept the last epoch");

        // Model nodes from the whole dev graph.
        var ti = new Tape { Recording = false };
        var all = Enumerable.Range(0, n * m).ToArray();
        var xAll = Encode(ti, net, graph, Align(ti, net, graph), all, training: false);
        var modelNodes = new Var(m, 2 * h, xAll.Value.AsSpan(n * 2 * h, m * 2 * h).ToArray());
        return new GraphRouter(data.Models, dq, net.QueryW, net.QueryB, net.TaskW, net.TaskB, taskEmbedding, modelNodes) { ValidationF1 = valQ.Length > 0 ? bestF1 : double.NaN, Strong = data.Strongest() };
    }

    private static float[] Predict(Net net, Graph g, IReadOnlyList<int> visible, IReadOnlyList<int> edges)
    {
        var t = new Tape { Recording = false };
        var x0 = Align(t, net, g);
        return EdgeLogits(t, g, x0, Encode(t, net, g, x0, visible, training: false), edges).Value;
    }

    private static int ArgMax(ReadOnlySpan<float> v)
    {
        int best = 0;
        for (int i = 1; i < v.Length; i++) if (v[i] > v[best]) best = i;
        return best;
    }

    /// <summary>Macro-averaged F1 over the classes that occur (as truth or guess).</summary>
    public static double MacroF1(IReadOnlyList<(int Truth, int Guess)> pairs, int classes)
    {
        double sum = 0; int counted = 0;
        for (int c = 0; c < classes; c++)
        {
            int tp = pairs.Count(p => p.Truth == c && p.Guess == c), fp = pairs.Count(p => p.Truth != c && p.Guess == c), fn = pairs.Count(p => p.Truth == c && p.Guess != c);
            if (tp + fp + fn == 0) continue;
            sum += 2.0 * tp / (2 * tp + fp + fn); counted++;
        }
        return counted == 0 ? 0 : sum / counted;
    }

    /// <inheritdoc />
    protected override double[] Score(ReadOnlySpan<float> embedding)
    {
        var t = new Tape { Recording = false };
        var x = t.ConcatCols(t.Linear(new Var(1, _task.Length, _task), _taskW, _taskB), t.Linear(new Var(1, Dimension, embedding.ToArray()), _queryW, _queryB));
        var logits = t.RowMean(t.Mul(t.Gather(x, new int[Models.Count]), _models));
        return logits.Value.Select(z => 1 / (1 + Math.Exp(-z))).ToArray();
    }

    internal override void Save(RouterState s)
    {
        int h = _queryW.Cols;
        s.Set("hidden", h); s.Set("task_dim", _task.Length);
        s.Set("query_w", _queryW.Value); s.Set("query_b", _queryB.Value); s.Set("task_w", _taskW.Value); s.Set("task_b", _taskB.Value);
        s.Set("task", _task); s.Set("model_nodes", _models.Value);
    }

    internal static GraphRouter Restore(IReadOnlyList<string> models, int dim, RouterState s)
    {
        int h = s.Int("hidden"), dt = s.Int("task_dim"), m = models.Count;
        return new GraphRouter(models, dim, new Var(dim, h, s.Floats("query_w", dim * h)), new Var(1, h, s.Floats("query_b", h)),
            new Var(dt, h, s.Floats("task_w", dt * h)), new Var(1, h, s.Floats("task_b", h)), s.Floats("task", dt), new Var(m, 2 * h, s.Floats("model_nodes", m * 2 * h)));
    }
}
