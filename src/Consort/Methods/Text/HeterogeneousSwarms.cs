using Consort.Optimization;
using Microsoft.Extensions.AI;

namespace Consort.Methods.Text;

/// <summary>Options of <see cref="HeterogeneousSwarmsMethod"/> (MoCo's names and defaults).</summary>
public sealed class HeterogeneousSwarmsOptions : TeamOptions
{
    /// <summary>Particles (graphs) per iteration.</summary>
    [Option("Graphs explored per iteration (particles).", Min = 1, Max = Limits.MaxSearchSteps)]
    public int Population { get; set; } = 5;
    /// <summary>Most iterations.</summary>
    [Option("Most iterations of the search.", Min = 1, Max = Limits.MaxSearchSteps)]
    public int MaxIterations { get; set; } = 5;
    /// <summary>Share of the dev split the search scores graphs on.</summary>
    [Option("Share of the dev split each graph is scored on (a seeded, stratified sample).", Min = 0, MinExclusive = true, Max = 1)]
    public double Ratio { get; set; } = 0.25;
    /// <summary>Initial velocities.</summary>
    [Option("Initial particle velocities: random or zero.")]
    public StartingVelocity StartingVelocityMode { get; set; } = StartingVelocity.Random;
    /// <summary>Random factors on the update weights.</summary>
    [Option("Draw random factors for the update weights each step.")]
    public bool WeightRandomness { get; set; } = true;
    /// <summary>Inertia.</summary>
    [Option("Weight of a particle's own velocity.", Min = 0, Max = 1000)] public double Inertia { get; set; } = 0.2;
    /// <summary>Cognitive coefficient.</summary>
    [Option("Weight of the pull to the particle's best.", Min = 0, Max = 1000)] public double CognitiveCoeff { get; set; } = 0.3;
    /// <summary>Social coefficient.</summary>
    [Option("Weight of the pull to the swarm's best.", Min = 0, Max = 1000)] public double SocialCoeff { get; set; } = 0.4;
    /// <summary>Repel coefficient.</summary>
    [Option("Weight of the push away from the swarm's worst.", Min = 0, Max = 1000)] public double RepelCoeff { get; set; } = 0.05;
    /// <summary>Whether the repel term is used.</summary>
    [Option("Use the repel term.")] public bool RepelTerm { get; set; } = true;
    /// <summary>Initial step length.</summary>
    [Option("Initial step length.", Min = 0, MinExclusive = true, Max = 1000)] public double StepLength { get; set; } = 0.5;
    /// <summary>Step length decay.</summary>
    [Option("Step length multiplier per iteration.", Min = 0, MinExclusive = true, Max = 1000)] public double StepLengthFactor { get; set; } = 0.95;
    /// <summary>Step length floor.</summary>
    [Option("Step length floor.", Min = 0, Max = 1000)] public double MinimumStepLength { get; set; } = 0.1;
    /// <summary>Early-stop patience.</summary>
    [Option("Stop when the best graph has not improved for this many iterations.", Min = 1, Max = Limits.MaxSearchSteps)] public int Patience { get; set; } = 5;
    /// <summary>Restart patience.</summary>
    [Option("Restart a particle that has not improved for this many iterations.", Min = 1, Max = Limits.MaxSearchSteps)] public int RestartPatience { get; set; } = 3;
    /// <summary>Top-p of the graph decoding.</summary>
    [Option("Top-p of the graph decoding from a particle's continuous adjacency (0 = always the strongest choice).", Min = 0, Max = 1)]
    public double GraphTopP { get; set; } = 0.7;
    /// <summary>Seed of the search.</summary>
    [Option("Seed of the search and of the graph decoding.", DefaultText = "run seed")]
    public int? Seed { get; set; }

    /// <summary>A fixed graph instead of the search.</summary>
    [Option("A fixed graph instead of the search: N x N of 0/1, graph[i][j] = 1 passes member i's output to member j; it must be acyclic with one last member (no out-edges) that every member leads to.",
        DefaultText = "searched on dev")]
    public int[][]? Graph { get; set; }
}

/// <summary>
/// <c>heterogeneous_swarms</c>: the members form a directed acyclic graph whose edges pass a member's output into
/// others' inputs; particle swarm optimization searches the graph (a continuous N x N adjacency decoded into a DAG)
/// on a share of dev, scoring each graph by its dev accuracy; the best graph answers. Seeded; each iteration is logged.
/// </summary>
[CollaborationMethod("heterogeneous_swarms", CollaborationLevel.Text, "Members form a DAG passing outputs along edges; the graph is searched with particle swarm optimization on dev.",
    Aliases = ["text_heterogeneous_swarms", "h_swarms"], MinModels = 2,
    Reference = "Heterogeneous Swarms (Feng et al., 2025), https://arxiv.org/abs/2502.04510")]
public sealed class HeterogeneousSwarmsMethod : CollaborationMethod<HeterogeneousSwarmsOptions>
{
    private const string WithPrevious = "Please answer the following question with the help of previous responses, feel free to ignore wrong or unhelpful responses.";

    /// <summary>Default role prompts (MoCo's instructions).</summary>
    public static readonly RolePrompts Prompts = new(new Dictionary<string, RolePrompts.Role>
    {
        ["first"] = new("Please answer the following question.\n{question}", "question"),
        ["middle"] = new(WithPrevious + "\n{previous}\n{question}", "question", "previous", "previous_inline"),
        ["last"] = new(WithPrevious + " Make sure to provide a final answer. {format}\n{previous}\n{question}", "question", "previous", "previous_inline"),
    });

    /// <inheritdoc />
    protected override void Validate(HeterogeneousSwarmsOptions options, MethodPlan plan)
    {
        options.Check(Prompts, plan, plan.Members.Count);
        int n = plan.Members.Count;
        if (options.Graph is { } g)
        {
            if (g.Length != n || g.Any(r => r is null || r.Length != n))
                throw plan.Error("graph", $"must be {n} x {n} (one row and column per member), got {g.Length} row(s) of {string.Join("/", g.Select(r => r?.Length ?? 0).Distinct())}");
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                    if (g[i][j] is not (0 or 1) || (i == j && g[i][j] == 1)) throw plan.Error("graph", $"[{i}][{j}] = {g[i][j]}: entries must be 0 or 1, and 0 on the diagonal");
            try { Levels(g); }
            catch (ConsortException) { throw plan.Error("graph", "has a cycle; the members must form a directed acyclic graph"); }
            var sinks = Enumerable.Range(0, n).Where(i => g[i].All(x => x == 0)).ToList();
            if (sinks.Count != 1) throw plan.Error("graph", $"must have exactly one last member (without out-edges), has {sinks.Count}: {string.Join(", ", sinks.Select(i => plan.Members[i].Name))}");
            return;
        }
        if (!plan.HasDev) throw plan.Error("searches its graph on dev: the task needs a dev split (or give a fixed 'graph')");
        SwarmOptions(options, 0).Validate(n * n);
    }

    private static ParticleSwarmOptions SwarmOptions(HeterogeneousSwarmsOptions o, int seed) => new()
    {
        Population = o.Population, MaxIterations = o.MaxIterations, StartingVelocity = o.StartingVelocityMode, WeightRandomness = o.WeightRandomness,
        Inertia = o.Inertia, CognitiveCoeff = o.CognitiveCoeff, SocialCoeff = o.SocialCoeff, RepelCoeff = o.RepelCoeff, RepelTerm = o.RepelTerm,
        StepLength = o.StepLength, StepLengthFactor = o.StepLengthFactor, MinimumStepLength = o.MinimumStepLength, Patience = o.Patience,
        RestartPatience = o.RestartPatience, LowerBound = -1, UpperBound = 1, Clamp = false, Seed = seed,
    };

    /// <summary>
    /// Decodes a continuous adjacency (row i = member i's out-edges) into a DAG as Heterogeneous Swarms does: the end node is
    /// drawn by inverse out-degree, then each remaining node (by out-degree) points to one node already placed (by its edge
    /// weight), each draw a top-p choice (<paramref name="topP"/> 0 = the strongest). Returns edges[i][j] = 1 for i → j.
    /// </summary>
    public static int[][] DecodeGraph(IReadOnlyList<double> position, int n, double topP, Random rng)
    {
        var a = new double[n, n];
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) a[i, j] = i == j ? 0 : position[i * n + j];
        double RowSum(int i) { double s = 0; for (int j = 0; j < n; j++) s += a[i, j]; return s; }
        var edges = Enumerable.Range(0, n).Select(_ => new int[n]).ToArray();
        int end = Choose(Enumerable.Range(0, n).Select(i => 1 / RowSum(i)).ToArray(), topP, rng);
        var placed = new List<int> { end };
        var left = Enumerable.Range(0, n).Where(i => i != end).ToList();
        while (left.Count > 0)
        {
            var degrees = Enumerable.Range(0, n).Select(i => placed.Contains(i) ? 0 : RowSum(i)).ToArray();
            int node = Choose(degrees, topP, rng);
            var toPlaced = Enumerable.Range(0, n).Select(j => placed.Contains(j) ? a[node, j] : 0).ToArray();
            int target = Choose(toPlaced, topP, rng);
            edges[node][target] = 1;
            placed.Add(node);
            left.Remove(node);
        }
        return edges;
    }

    /// <summary>A top-p draw over softmax(<paramref name="values"/>) where exact zeros mean "no option" (as in the paper's code).</summary>
    private static int Choose(double[] values, double topP, Random rng)
    {
        var p = values.Select(v => v == 0 || double.IsNaN(v) ? 0 : Math.Exp(Math.Clamp(v, -700, 700))).ToArray();
        double sum = p.Sum();
        if (sum <= 0 || !double.IsFinite(sum)) p = values.Select(v => v == 0 ? 0.0 : 1.0).ToArray();
        sum = p.Sum();
        if (sum <= 0) return Array.IndexOf(values, values.Max());
        p = p.Select(x => x / sum).ToArray();
        var order = Enumerable.Range(0, p.Length).OrderByDescending(i => p[i]).ThenBy(i => i).ToList();
        var kept = new List<int>();
        double cum = 0;
        foreach (var i in order) { cum += p[i]; kept.Add(i); if (cum > topP) break; }
        if (kept.Count == 1) return kept[0];
        // The kept probabilities go through a softmax again before the draw (the paper's code does so).
        var w = kept.Select(i => Math.Exp(p[i])).ToArray();
        double r = rng.NextDouble() * w.Sum();
        for (int k = 0; k < kept.Count; k++) if ((r -= w[k]) < 0) return kept[k];
        return kept[^1];
    }

    /// <summary>Nodes grouped by depth (sources first; the end node is in the last group).</summary>
    public static List<List<int>> Levels(int[][] edges)
    {
        int n = edges.Length;
        var depth = new int[n];
        var indeg = Enumerable.Range(0, n).Select(j => Enumerable.Range(0, n).Count(i => edges[i][j] == 1)).ToArray();
        var queue = new Queue<int>(Enumerable.Range(0, n).Where(i => indeg[i] == 0));
        var order = new List<int>();
        while (queue.Count > 0)
        {
            int i = queue.Dequeue();
            order.Add(i);
            for (int j = 0; j < n; j++)
                if (edges[i][j] == 1) { depth[j] = Math.Max(depth[j], depth[i] + 1); if (--indeg[j] == 0) queue.Enqueue(j); }
        }
        if (order.Count != n) throw new ConsortException("the graph has a cycle");
        return order.GroupBy(i => depth[i]).OrderBy(g => g.Key).Select(g => g.OrderBy(i => i).ToList()).ToList();
    }

    /// <inheritdoc />
    protected override async Task<ConsortModel> CreateAsync(MethodContext context, HeterogeneousSwarmsOptions options, CancellationToken ct)
    {
        int n = context.Models.Count, seed = options.Seed ?? context.Seed;
        if (options.Graph is { } fixedGraph)
        {
            var d = DescriptorOf(context, options);
            return new ConsortModel(d, new Client(d, context, options, fixedGraph), null, context.Models, Name);
        }
        var dev = context.Dev!.Sample(Math.Max(1, (int)Math.Ceiling(options.Ratio * context.Dev!.Examples.Count)), seed);
        var swarm = new ParticleSwarm(n * n, SwarmOptions(options, seed));
        int iteration = 0;
        var (best, score) = await swarm.OptimizeAsync(async (x, particle, token) =>
        {
            var graph = DecodeGraph(x, n, options.GraphTopP, new Random(HashCode.Combine(seed, iteration, particle)));
            var client = new Client(DescriptorOf(context, options), context, options, graph);
            var scores = await CollaborationChatClient.ParallelAsync(dev, context.MaxConcurrency, async (ex, _, t) =>
                ex.Score((await client.GetResponseAsync(ex.Messages, options.Apply(ex.Options), t).ConfigureAwait(false)).Text), token).ConfigureAwait(false);
            return scores.DefaultIfEmpty(0).Average();
        }, new Progress(p =>
        {
            iteration = p.Iteration;
            context.Log?.Invoke($"{context.Name}: swarm iteration {p.Iteration}/{p.MaxIterations}: best {p.BestScore:F3}, this iteration best {p.IterationBest:F3} mean {p.IterationMean:F3}{(p.Stopped ? " (done)" : "")}");
        }), parallelism: 1, ct).ConfigureAwait(false);
        var final = DecodeGraph(best, n, options.GraphTopP, new Random(HashCode.Combine(seed, -1)));
        context.Log?.Invoke($"{context.Name}: best graph (dev {score:F3} on {dev.Count} questions): "
            + string.Join(", ", Enumerable.Range(0, n).SelectMany(i => Enumerable.Range(0, n).Where(j => final[i][j] == 1).Select(j => $"{context.Models[i].Name} -> {context.Models[j].Name}"))));
        var descriptor = DescriptorOf(context, options);
        return new ConsortModel(descriptor, new Client(descriptor, context, options, final), null, context.Models, Name);
    }

    /// <summary>Reports progress on the caller's thread (the search is sequential over iterations).</summary>
    private sealed class Progress(Action<SwarmProgress> report) : IProgress<SwarmProgress>
    {
        public void Report(SwarmProgress value) => report(value);
    }

    /// <summary>Answers along a fixed graph: nodes of one depth in parallel, each reading its predecessors' outputs.</summary>
    private sealed class Client(ModelDescriptor descriptor, MethodContext context, HeterogeneousSwarmsOptions settings, int[][] edges) : CollaborationChatClient(descriptor)
    {
        private readonly List<List<int>> _levels = Levels(edges);

        protected override async Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct)
        {
            var run = new TeamRun(context.Models, settings, messages, options, trace, context.MaxConcurrency, context.Answers);
            int n = edges.Length, end = _levels[^1][^1];
            var outputs = new TeamReply?[n];
            for (int depth = 0; depth < _levels.Count; depth++)
            {
                var asks = _levels[depth].Select(j =>
                {
                    var from = Enumerable.Range(0, n).Where(i => edges[i][j] == 1).ToList();
                    if (from.Count == 0) return new TeamAsk(j, "first", depth, run.Render("first"));
                    var prev = from.Where(i => outputs[i] is not null).Select(i => (i, text: TeamRun.OneLine(outputs[i]!.Text))).ToList();
                    var block = string.Join("\n\n", prev.Select(p => $"Previous response from node {p.i + 1}: {p.text}"));
                    var said = TeamRun.Shown(from.Select(i => outputs[i]));
                    return new TeamAsk(j, j == end ? "last" : "middle", depth, run.Render(j == end ? "last" : "middle", ("previous", block), ("previous_inline", string.Join(" | ", said))))
                    {
                        Data = new() { ["from"] = from.Select(i => context.Models[i].Name).ToList() },
                    };
                }).ToList();
                var replies = await run.RoundAsync(asks, ct).ConfigureAwait(false);
                for (int k = 0; k < asks.Count; k++) outputs[asks[k].Member] = replies[k];
            }
            var answer = outputs[end] ?? throw new ConsortException($"the graph's last member '{context.Models[end].Name}' gave no answer (budget: {run.Budget.Reached})");
            return run.Finish(answer.Text, answer.Member);
        }
    }
}
