namespace Consort.Methods.Text;

/// <summary>Options of <see cref="SpartaMethod"/>: MoCo's keys, accepted so that the one error says what is missing.</summary>
public sealed class SpartaOptions : MethodOptions
{
    /// <summary>MoCo's iterations.</summary>
    [Option("MoCo: competition + DPO iterations.", DefaultText = "-")] public int? NumIterations { get; set; }
    /// <summary>MoCo's resume iteration.</summary>
    [Option("MoCo: iteration to resume from.", DefaultText = "-")] public int? CurrentIteration { get; set; }
    /// <summary>MoCo's log folder.</summary>
    [Option("MoCo: folder for logs and adapters.", DefaultText = "-")] public string? BaseDir { get; set; }
    /// <summary>MoCo's judge batch size.</summary>
    [Option("MoCo: judge batch size.", DefaultText = "-")] public int? JudgeBatchSize { get; set; }
    /// <summary>MoCo's judge rounds.</summary>
    [Option("MoCo: judging rounds per pair.", DefaultText = "-")] public int? JudgeRounds { get; set; }
    /// <summary>MoCo's instructions per iteration.</summary>
    [Option("MoCo: instructions per iteration.", DefaultText = "-")] public int? NumInstructions { get; set; }
    /// <summary>MoCo's random match probability.</summary>
    [Option("MoCo: probability of a random opponent.", DefaultText = "-")] public double? RandomMatchProb { get; set; }
    /// <summary>MoCo's opponents.</summary>
    [Option("MoCo: opponents considered by reputation.", DefaultText = "-")] public int? NumOpponents { get; set; }
    /// <summary>MoCo's initial K.</summary>
    [Option("MoCo: initial rating K.", DefaultText = "-")] public double? InitialK { get; set; }
    /// <summary>MoCo's minimum K.</summary>
    [Option("MoCo: minimum rating K.", DefaultText = "-")] public double? MinK { get; set; }
    /// <summary>MoCo's window.</summary>
    [Option("MoCo: deviation window.", DefaultText = "-")] public int? WindowSize { get; set; }
    /// <summary>MoCo's minimum deviation.</summary>
    [Option("MoCo: minimum deviation.", DefaultText = "-")] public double? MinDeviation { get; set; }
    /// <summary>MoCo's epsilon.</summary>
    [Option("MoCo: numerical epsilon.", DefaultText = "-")] public double? Epsilon { get; set; }
    /// <summary>MoCo's K decay rate.</summary>
    [Option("MoCo: K decay rate.", DefaultText = "-")] public double? DecayRate { get; set; }
    /// <summary>MoCo's K decay steps.</summary>
    [Option("MoCo: K decay steps.", DefaultText = "-")] public int? DecaySteps { get; set; }
    /// <summary>MoCo's scaling factor.</summary>
    [Option("MoCo: rating scaling factor.", DefaultText = "-")] public double? ScalingFactor { get; set; }
    /// <summary>MoCo's rating type.</summary>
    [Option("MoCo: rating system (normal, dynamic, static).", DefaultText = "-")] public string? ScoreType { get; set; }
    /// <summary>MoCo's frozen ratings.</summary>
    [Option("MoCo: keep ratings fixed.", DefaultText = "-")] public bool? FreezeRatings { get; set; }
    /// <summary>MoCo's debug flag.</summary>
    [Option("MoCo: print rating updates.", DefaultText = "-")] public bool? Debug { get; set; }
}

/// <summary>
/// <c>sparta</c> (MoCo's <c>text_sparta</c>): models compete pairwise, judge each other with Elo-like ratings and are
/// aligned with DPO on the preferences, over several iterations. Not available: Consort has no preference-optimization
/// trainer; the name is known so that a MoCo config fails before any work with that reason.
/// </summary>
[CollaborationMethod("sparta", CollaborationLevel.Text, "Not available: MoCo aligns the models with DPO after pairwise competitions.",
    Aliases = ["text_sparta"], MinModels = 1, Reference = "SPARTA ALIGNMENT: Collectively Aligning Multiple Language Models through Combat (2025), https://arxiv.org/abs/2506.04721")]
public sealed class SpartaMethod : CollaborationMethod<SpartaOptions>
{
    /// <inheritdoc />
    protected override void Validate(SpartaOptions options, MethodPlan plan) =>
        throw plan.Error("is not available in Consort: it trains every model with DPO (LoRA on GPUs) on preferences from pairwise competitions, and Consort has no DPO trainer; "
                         + "llm_blender uses pairwise judgements without training");

    /// <inheritdoc />
    protected override Task<ConsortModel> CreateAsync(MethodContext context, SpartaOptions options, CancellationToken cancellationToken) =>
        throw new ConfigException("sparta is not available in Consort");
}
