using Consort.Config;
using System.Text.Json.Nodes;
using Consort.Methods.Api.Routing;
using Microsoft.Extensions.AI;

namespace Consort.Methods.Api;

/// <summary>Router kinds of <see cref="TrainedRouterMethod"/>.</summary>
public enum RouterKind
{
    /// <summary>k nearest dev queries vote with their outcomes.</summary>
    [OptionValue("knn")] Knn,
    /// <summary>A small network regresses each member's utility.</summary>
    [OptionValue("mlp")] Mlp,
    /// <summary>RouteLLM's matrix factorization.</summary>
    [OptionValue("mf")] Mf,
    /// <summary>RouteLLM's similarity-weighted Bradley-Terry ranking.</summary>
    [OptionValue("sw_ranking")] SwRanking,
    /// <summary>MoCo's: a small local model fine-tuned to write the best member's name after the query.</summary>
    [OptionValue("lm")] Lm,
}

/// <summary>Options of <see cref="TrainedRouterMethod"/>.</summary>
public sealed class TrainedRouterOptions : MethodOptions
{
    [Option("Router: knn, mlp, mf (RouteLLM's matrix factorization), sw_ranking (RouteLLM's similarity-weighted ranking) over query embeddings; " +
            "lm (MoCo's: router_base_model fine-tuned on dev to write the best member's name after the query).")]
    public RouterKind Router { get; set; } = RouterKind.Mlp;

    [Option("Query embeddings: \"minilm\" (offline all-MiniLM-L6-v2), a GGUF model (path, zoo:, hf:) or {\"base_url\", \"model\"} of an endpoint's /v1/embeddings.", DefaultText = "minilm")]
    public JsonNode? Embedding { get; set; }

    [Option("λ in quality − λ·cost (cost: price, else tokens, scaled by the most expensive member's mean).", Min = 0, Max = 1000)]
    public double CostWeight { get; set; }

    [Option("Saved router: loaded when present (checked to belong to these members and embedding), else trained and written.", DefaultText = "none")]
    public string? RouterPath { get; set; }

    [Option("Dev examples the router trains on (all when larger).", Min = 1, Max = 1_000_000)]
    public int DevSize { get; set; } = 100_000;

    [Option("Neighbours of the knn router.", Min = 1, Max = 10_000)]
    public int K { get; set; } = 10;

    [Option("Hidden units of the mlp router.", Min = 1, Max = 4096)]
    public int Hidden { get; set; } = 64;

    [Option("Training epochs (mlp: full-batch steps; mf: passes).", Min = 1, Max = 100_000, DefaultText = "mlp 300, mf 100")]
    public int? Epochs { get; set; }

    [Option("Learning rate (Adam).", Min = 0, MinExclusive = true, Max = 10, DefaultText = "mlp 1e-2, mf 3e-4")]
    public double? LearningRate { get; set; }

    [Option("L2 penalty of the mlp router; unset: the one of 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1 with the least 5-fold cross-validated error on dev.",
        Min = 0, Max = 100, DefaultText = "cross-validated")]
    public double? WeightDecay { get; set; }

    [Option("Latent width of the mf router (RouteLLM's hidden_size).", Min = 1, Max = 4096, Aliases = ["hidden_size"])]
    public int MfDim { get; set; } = 128;

    [Option("Routing threshold on the strong member's predicted lead (RouteLLM's rule); none = the best predicted member.", Min = -1000, Max = 1000, DefaultText = "none (arg-max)")]
    public double? Threshold { get; set; }

    [Option("Calibrate the threshold so that this share of dev queries goes to the strong (most expensive) member, as RouteLLM's calibration does.", Min = 0, Max = 1, DefaultText = "none")]
    public double? StrongShare { get; set; }

    [Option("Candidate descriptions (MoCo's; accepted and checked, the embedding routers do not read them).", DefaultText = "none")]
    public List<string>? ModelDescriptions { get; set; }

    [Option("Router lm: the local model fine-tuned into the router (a byte-level tiny LLaMA GGUF, as consort train makes; path or zoo:NAME); other routers ignore it (MoCo's name).",
        DefaultText = "zoo:base")]
    public string? RouterBaseModel { get; set; }

    [Option("Router lm: fine-tuning steps (batches of 8 dev pairs).", Min = 1, Max = 100_000)]
    public int LmSteps { get; set; } = 60;

    [Option("MoCo's reward model for ties: accepted, no effect (ties count as ties).", Ignored = true, DefaultText = "-")]
    public string? RewardModelName { get; set; }

    [Option("MoCo's reward-model GPU: accepted, no effect.", Ignored = true, DefaultText = "-")]
    public int? RewardModelGpuId { get; set; }
}

/// <summary>
/// <c>trained_router</c> (MoCo's <c>api_trained_router</c>, RouteLLM's routers): every member answers the dev
/// examples once; a router learns from the query embeddings which member to call (utility = quality − λ·cost);
/// each test query is embedded and sent to the member with the best predicted utility, or, with a threshold, to the
/// strong (most expensive) member only when its predicted lead reaches the threshold (RouteLLM's routing rule;
/// <c>strong_share</c> calibrates that threshold to a target share of strong calls on dev). A trained router is
/// saved to <c>router_path</c> and reused without retraining when it belongs to the same members and embedding.
/// </summary>
[CollaborationMethod("trained_router", CollaborationLevel.Api,
    "A router trained on dev outcomes (knn, mlp, RouteLLM's mf or sw_ranking over query embeddings) picks the member per query.",
    Aliases = ["api_trained_router"], Reference = "RouteLLM (Ong et al., 2024), https://arxiv.org/abs/2406.18665",
    MinModels = 2)]
public sealed class TrainedRouterMethod : CollaborationMethod<TrainedRouterOptions>
{
    /// <inheritdoc />
    protected override void Validate(TrainedRouterOptions options, MethodPlan plan)
    {
        EmbeddingSpec.Check(options.Embedding, plan, "embedding");
        if (options.Router == RouterKind.Lm)
        {
            if (options.Threshold is not null || options.StrongShare is not null)
                throw plan.Error(options.Threshold is not null ? "threshold" : "strong_share", "applies to the embedding routers; router lm names a member");
            if (plan.GetService<IModelReferences>() is { } refs)
            {
                var spec = refs.Parse(JsonValue.Create(options.RouterBaseModel ?? LmRouter.DefaultBase), plan.BaseDirectory, $"{plan.Where}: hyperparameter 'router_base_model'");
                if (spec is not GgufModelSpec g) throw plan.Error("router_base_model", "must be a local GGUF model (path or zoo:NAME) to fine-tune");
                if (!File.Exists(g.Path) && !(options.RouterPath is { } rp && File.Exists(Path.GetFullPath(rp, plan.BaseDirectory))))
                    throw plan.Error("router_base_model", $"'{g.Reference}': file not found ({g.Path})");
            }
        }
        if (options.ModelDescriptions is { } d && d.Count != plan.Members.Count)
            throw plan.Error("model_descriptions", $"has {d.Count} description(s) for {plan.Members.Count} members ({string.Join(", ", plan.Members.Select(m => m.Name))})");
        bool saved = options.RouterPath is { } p && File.Exists(Path.GetFullPath(p, plan.BaseDirectory));
        if (saved && options.Router != RouterKind.Lm) RouterFile.CheckSaved(plan, options.RouterPath!, Settings(options));
        if (!saved && !plan.HasDev)
            throw plan.Error(options.RouterPath is null ? "needs a task with a dev split to train on (or 'router_path' of a trained router)"
                : $"router_path '{options.RouterPath}' does not exist yet and there is no dev split to train it on");
        if (options.Threshold is not null && options.StrongShare is not null)
            throw plan.Error("strong_share", "and 'threshold' both set the routing threshold: give one");
    }

    /// <summary>The trainer's settings from the options (kind defaults where unset).</summary>
    public static RouterTrainingOptions TrainingOptions(TrainedRouterOptions o, int seed) => new()
    {
        CostWeight = o.CostWeight, Seed = seed, K = o.K,
        Mlp = new MlpRouterOptions(Hidden: o.Hidden, Epochs: o.Epochs ?? 300, LearningRate: o.LearningRate ?? 1e-2, WeightDecay: o.WeightDecay),
        Mf = new MfRouterOptions(Dim: o.MfDim, Epochs: o.Epochs ?? 100, LearningRate: o.LearningRate ?? 3e-4),
    };

    // What a saved router must have been trained with besides its members and embedding.
    private static string Settings(TrainedRouterOptions o) => $"router={KindName(o.Router)}; cost_weight={o.CostWeight:R}";

    /// <summary>Config name of a kind.</summary>
    public static string KindName(RouterKind k) => k switch { RouterKind.Knn => "knn", RouterKind.Mlp => "mlp", RouterKind.Mf => "mf", RouterKind.Lm => "lm", _ => "sw_ranking" };

    /// <inheritdoc />
    protected override async Task<ConsortModel> CreateAsync(MethodContext context, TrainedRouterOptions options, CancellationToken ct)
    {
        if (options.Router == RouterKind.Lm) return await LmRouter.CreateAsync(context, options, DescriptorOf(context, options), Name, ct).ConfigureAwait(false);
        var models = context.Models;
        var sources = context.GetService<IEmbeddingSources>() ?? throw new ConsortException($"method '{Name}' needs embeddings, and this host offers none");
        string baseDir = context.BaseDirectory ?? Environment.CurrentDirectory;
        var (embedder, embeddingId) = await sources.CreateAsync(options.Embedding, baseDir, ct).ConfigureAwait(false);
        try
        {
            string kind = KindName(options.Router);
            var identity = RouterIdentity.For(models.Select(m => m.Descriptor).ToArray(), embeddingId, Settings(options));
            string? path = options.RouterPath is { } p ? Path.GetFullPath(p, baseDir) : null;
            Router router;
            DevOutcomes? outcomes = null;
            float[][]? devEmbeddings = null;
            if (path is not null && File.Exists(path))
            {
                router = RouterFile.Load(path, identity, kind);
                context.Log?.Invoke($"trained_router: loaded the {kind} router from {path}");
            }
            else
            {
                var dev = context.Dev ?? throw new ConfigException($"method '{Name}' needs a dev split to train on");
                outcomes = await DevOutcomes.MeasureAsync(models, dev.Sample(options.DevSize, context.Seed), ex => options.Apply(ex.Options), context.MaxConcurrency, ct).ConfigureAwait(false);
                devEmbeddings = await EmbeddingRouterClient.EmbedAsync(embedder, outcomes.Examples.Select(e => DevOutcomes.QueryText(e.Messages)).ToArray(), ct).ConfigureAwait(false);
                router = RouterTrainer.Train(kind, outcomes.ToDataset(models.Select(m => m.Name).ToArray(), devEmbeddings), TrainingOptions(options, context.Seed));
                var means = outcomes.MeanQuality();
                string decay = router is MlpRouter mlp ? $", weight decay {mlp.WeightDecay:G3}{(options.WeightDecay is null ? " (cross-validated)" : "")}" : "";
                context.Log?.Invoke($"trained_router: {kind} router trained on {outcomes.Examples.Count} dev examples (cost in {outcomes.CostUnit}{decay}); dev scores {string.Join(", ", models.Select((m, i) => $"{m.Name} {means[i]:F3}"))}");
                if (path is not null) { RouterFile.Save(path, router, identity); context.Log?.Invoke($"trained_router: saved to {path}"); }
            }
            double? threshold = options.Threshold;
            if (options.StrongShare is { } share)
            {
                if (devEmbeddings is null)
                {
                    var dev = context.Dev ?? throw new ConfigException($"method '{Name}': strong_share needs a dev split to calibrate on");
                    devEmbeddings = await EmbeddingRouterClient.EmbedAsync(embedder, dev.Sample(options.DevSize, context.Seed).Select(e => DevOutcomes.QueryText(e.Messages)).ToArray(), ct).ConfigureAwait(false);
                }
                threshold = ThresholdCalibration.Calibrate(devEmbeddings.Select(e => Router.StrongAdvantage(router.Predict(e), router.Strong)).ToArray(), share);
                context.Log?.Invoke($"trained_router: threshold {threshold:G4} sends {share * 100:0.#}% of dev queries to '{models[router.Strong].Name}'");
            }
            var descriptor = DescriptorOf(context, options);
            return new ConsortModel(descriptor, new EmbeddingRouterClient(descriptor, models, router, embedder, threshold, options), null, models, Name, embedder);
        }
        catch
        {
            embedder.Dispose();
            throw;
        }
    }
}
