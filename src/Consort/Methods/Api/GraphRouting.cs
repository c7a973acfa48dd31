using System.Text.Json.Nodes;
using Consort.Methods.Api.Routing;

namespace Consort.Methods.Api;

/// <summary>Options of <see cref="GraphRoutingMethod"/> (MoCo's names and defaults).</summary>
public sealed class GraphRoutingOptions : MethodOptions
{
    [Option("One description per member, in member order (embedded as the model nodes' features).")]
    public List<string>? ModelDescriptions { get; set; }

    [Option("Text describing the task (embedded as every query's task feature).", DefaultText = "the run's name")]
    public string? TaskDescription { get; set; }

    [Option("Embeddings of queries and descriptions: \"minilm\" (MoCo's sentence-transformers/all-MiniLM-L6-v2), a GGUF model, or an endpoint {\"base_url\", \"model\"}.",
        Aliases = ["embedding_model_name", "embedding_model"], DefaultText = "minilm")]
    public JsonNode? Embedding { get; set; }

    [Option("Width of aligned features (models: twice this).", Min = 1, Max = 1024)]
    public int HiddenFeatures { get; set; } = 8;

    [Option("Edge features: quality, cost and scenario utility, so 3.", Min = 3, Max = 3)]
    public int InEdges { get; set; } = 3;

    [Option("AdamW learning rate.", Min = 0, MinExclusive = true, Max = 10)]
    public double LearningRate { get; set; } = 1e-4;

    [Option("AdamW weight decay.", Min = 0, Max = 10)]
    public double WeightDecay { get; set; } = 1e-4;

    [Option("Training epochs (one optimizer step each).", Min = 1, Max = Limits.MaxSearchSteps)]
    public int TrainEpochs { get; set; } = 500;

    [Option("Random edge masks averaged per epoch (MoCo's GNN reused its batch_size, 32, for this).", Min = 1, Max = Limits.MaxRepeats)]
    public int MaskSamples { get; set; } = 32;

    [Option("Share of training edges visible to message passing in each mask.", Min = 0, MinExclusive = true, Max = 1)]
    public double TrainMaskRate { get; set; } = 0.5;

    [Option("Train / validation / unused shares of the dev examples.", Min = 0, Max = 1)]
    public List<double> SplitRatio { get; set; } = [0.8, 0.1, 0.1];

    [Option("Trade-off: Performance First (quality), Balance (0.5 quality − 0.5 cost), Cost First (0.2 quality − 0.8 cost).")]
    public GraphScenario Scenario { get; set; } = GraphScenario.PerformanceFirst;

    [Option("Saved router: loaded when present (checked against members, embedding and scenario), else trained and written.", DefaultText = "none")]
    public string? RouterPath { get; set; }

    [Option("Dev examples the graph is built from (all when larger).", Min = 1, Max = 1_000_000)]
    public int DevSize { get; set; } = 100_000;
}

/// <summary>
/// <c>graph_routing</c> (MoCo's <c>api_graph_routing</c>, GraphRouter's idea): a graph of dev queries and member
/// models (features: embeddings of the queries with the task description, and of the members' descriptions), edges
/// carrying each member's observed quality and measured cost on each query; a small GNN (two message-passing layers,
/// see <see cref="GraphRouter"/>) learns which edge a query should take under the scenario, and each test query goes
/// to the member whose edge it scores highest.
/// </summary>
[CollaborationMethod("graph_routing", CollaborationLevel.Api,
    "A GNN over a query-model graph (edges: observed quality and cost on dev) picks the member per query.",
    Aliases = ["api_graph_routing"], Reference = "GraphRouter (Feng et al., 2024), https://arxiv.org/abs/2410.03834",
    MinModels = 2)]
public sealed class GraphRoutingMethod : CollaborationMethod<GraphRoutingOptions>
{
    /// <inheritdoc />
    protected override void Validate(GraphRoutingOptions options, MethodPlan plan)
    {
        EmbeddingSpec.Check(options.Embedding, plan, "embedding");
        if (options.ModelDescriptions is not { } d) throw plan.Error("model_descriptions", "is required: one description per member (the model nodes' features)");
        if (d.Count != plan.Members.Count)
            throw plan.Error("model_descriptions", $"has {d.Count} description(s) for {plan.Members.Count} members ({string.Join(", ", plan.Members.Select(m => m.Name))})");
        if (options.SplitRatio.Count != 3 || options.SplitRatio[0] <= 0)
            throw plan.Error("split_ratio", $"must be three shares (train, validation, unused) with a positive train share, got [{string.Join(", ", options.SplitRatio)}]");
        bool saved = options.RouterPath is { } p && File.Exists(Path.GetFullPath(p, plan.BaseDirectory));
        if (saved) RouterFile.CheckSaved(plan, options.RouterPath!, Settings(options, plan.Name));
        if (!saved && !plan.HasDev) throw plan.Error("needs a task with a dev split to build the graph from (or 'router_path' of a trained router)");
    }

    // What a saved graph router must have been trained with besides its members and embedding.
    private static string Settings(GraphRoutingOptions o, string name) =>
        $"scenario={o.Scenario}; task={o.TaskDescription ?? name}; descriptions={string.Join("|", o.ModelDescriptions!)}";

    /// <inheritdoc />
    protected override async Task<ConsortModel> CreateAsync(MethodContext context, GraphRoutingOptions options, CancellationToken ct)
    {
        var models = context.Models;
        var sources = context.GetService<IEmbeddingSources>() ?? throw new ConsortException($"method '{Name}' needs embeddings, and this host offers none");
        string baseDir = context.BaseDirectory ?? Environment.CurrentDirectory;
        var (embedder, embeddingId) = await sources.CreateAsync(options.Embedding, baseDir, ct).ConfigureAwait(false);
        try
        {
            var o = new GraphRouterOptions(options.HiddenFeatures, options.InEdges, options.LearningRate, options.WeightDecay, options.TrainEpochs,
                options.MaskSamples, options.TrainMaskRate, [.. options.SplitRatio], options.Scenario);
            string task = options.TaskDescription ?? context.Name;
            var identity = RouterIdentity.For(models.Select(m => m.Descriptor).ToArray(), embeddingId, Settings(options, context.Name));
            string? path = options.RouterPath is { } p ? Path.GetFullPath(p, baseDir) : null;
            Router router;
            if (path is not null && File.Exists(path))
            {
                router = RouterFile.Load(path, identity, "graph");
                context.Log?.Invoke($"graph_routing: loaded the graph router from {path}");
            }
            else
            {
                var dev = context.Dev ?? throw new ConfigException($"method '{Name}' needs a dev split to build the graph from");
                var outcomes = await DevOutcomes.MeasureAsync(models, dev.Sample(options.DevSize, context.Seed), ex => options.Apply(ex.Options), context.MaxConcurrency, ct).ConfigureAwait(false);
                var queries = await EmbeddingRouterClient.EmbedAsync(embedder, outcomes.Examples.Select(e => DevOutcomes.QueryText(e.Messages)).ToArray(), ct).ConfigureAwait(false);
                var texts = await EmbeddingRouterClient.EmbedAsync(embedder, [.. options.ModelDescriptions!, task], ct).ConfigureAwait(false);
                var graph = GraphRouter.Train(outcomes.ToDataset(models.Select(m => m.Name).ToArray(), queries), texts[..^1], texts[^1], o, context.Seed, context.Log);
                router = graph;
                if (path is not null) { RouterFile.Save(path, router, identity); context.Log?.Invoke($"graph_routing: saved to {path}"); }
            }
            var descriptor = DescriptorOf(context, options);
            return new ConsortModel(descriptor, new EmbeddingRouterClient(descriptor, models, router, embedder, null, options), null, models, Name, embedder);
        }
        catch
        {
            embedder.Dispose();
            throw;
        }
    }
}
