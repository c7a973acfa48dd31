namespace Consort.Methods.Text;

/// <summary>Options of <see cref="AggLmMethod"/>: MoCo's keys, accepted so that the one error says what is missing.</summary>
public sealed class AggLmOptions : MethodOptions
{
    /// <summary>MoCo's aggregator base model.</summary>
    [Option("MoCo: the aggregator's base model (a Hugging Face id).", DefaultText = "-")] public string? AggModel { get; set; }
    /// <summary>MoCo's log folder.</summary>
    [Option("MoCo: folder for training logs and adapters.", DefaultText = "-")] public string? AgglmLogPath { get; set; }
    /// <summary>MoCo's reuse flag.</summary>
    [Option("MoCo: reuse earlier generations and weights.", DefaultText = "-")] public bool? ReuseLog { get; set; }
    /// <summary>MoCo's learning rate.</summary>
    [Option("MoCo: GRPO learning rate.", DefaultText = "-")] public double? LearningRate { get; set; }
    /// <summary>MoCo's weight decay.</summary>
    [Option("MoCo: weight decay.", DefaultText = "-")] public double? WeightDecay { get; set; }
    /// <summary>MoCo's scheduler.</summary>
    [Option("MoCo: learning-rate scheduler.", DefaultText = "-")] public string? LrScheduler { get; set; }
    /// <summary>MoCo's epochs.</summary>
    [Option("MoCo: training epochs.", DefaultText = "-")] public int? MaxEpochs { get; set; }
    /// <summary>MoCo's train batch size.</summary>
    [Option("MoCo: GRPO batch size and group size.", DefaultText = "-")] public int? TrainBatchSize { get; set; }
    /// <summary>MoCo's sample size.</summary>
    [Option("MoCo: solution sets sampled per training problem.", DefaultText = "-")] public int? SampleSize { get; set; }
}

/// <summary>
/// <c>agglm</c> (MoCo's <c>text_agglm</c>): trains an aggregator of candidate solutions with reinforcement learning (GRPO,
/// LoRA) on dev. Not available: Consort has no reinforcement-learning trainer; the name is known so that a MoCo config
/// fails before any work with that reason. <c>mixture_of_agents</c> or <c>llm_blender</c> aggregate without training.
/// </summary>
[CollaborationMethod("agglm", CollaborationLevel.Text, "Not available: MoCo trains the aggregator with GRPO; use mixture_of_agents or llm_blender.",
    Aliases = ["text_agglm"], MinModels = 1, Reference = "The Majority is not always right: RL training for solution aggregation (2025), https://arxiv.org/abs/2509.06870")]
public sealed class AggLmMethod : CollaborationMethod<AggLmOptions>
{
    /// <inheritdoc />
    protected override void Validate(AggLmOptions options, MethodPlan plan) =>
        throw plan.Error("is not available in Consort: it trains the aggregator with reinforcement learning (GRPO with LoRA on GPUs), and Consort has no RL trainer; "
                         + "mixture_of_agents or llm_blender aggregate candidates without training");

    /// <inheritdoc />
    protected override Task<ConsortModel> CreateAsync(MethodContext context, AggLmOptions options, CancellationToken cancellationToken) =>
        throw new ConfigException("agglm is not available in Consort");
}
