namespace Consort.Methods.Text;

/// <summary>Options of <see cref="MultiagentFinetuningMethod"/>: MoCo's keys, accepted so that the one error says what is missing.</summary>
public sealed class MultiagentFinetuningOptions : MethodOptions
{
    /// <summary>MoCo's iterations.</summary>
    [Option("MoCo: debate + fine-tuning iterations.", DefaultText = "-")] public int? Iterations { get; set; }
    /// <summary>MoCo's debate rounds.</summary>
    [Option("MoCo: debate rounds.", DefaultText = "-")] public int? Rounds { get; set; }
    /// <summary>MoCo's critic weight.</summary>
    [Option("MoCo: weight of corrected-answer critic examples.", DefaultText = "-")] public double? W { get; set; }
    /// <summary>MoCo's dev share.</summary>
    [Option("MoCo: share of dev used for the SFT data.", DefaultText = "-")] public double? TrainingRatio { get; set; }
    /// <summary>MoCo's SFT epochs.</summary>
    [Option("MoCo: LoRA SFT epochs.", DefaultText = "-")] public int? SftEpochs { get; set; }
    /// <summary>MoCo's SFT learning rate.</summary>
    [Option("MoCo: LoRA SFT learning rate.", DefaultText = "-")] public double? SftLearningRate { get; set; }
    /// <summary>MoCo's SFT batch size.</summary>
    [Option("MoCo: LoRA SFT batch size.", DefaultText = "-")] public int? SftBatchSize { get; set; }
    /// <summary>MoCo's SFT accumulation.</summary>
    [Option("MoCo: LoRA SFT gradient accumulation.", DefaultText = "-")] public int? SftGradAccum { get; set; }
}

/// <summary>
/// <c>multiagent_finetuning</c> (MoCo's <c>text_multiagent_finetuning</c>): copies of a model debate on dev, and each
/// generation and critic agent is fine-tuned (LoRA SFT on GPUs) on the debates that agree with the consensus, over
/// several iterations. Not available: methods in Consort do not train members; the name is known so that a MoCo config
/// fails before any work with that reason. <c>multiagent_refine</c> runs the same debate without the fine-tuning.
/// </summary>
[CollaborationMethod("multiagent_finetuning", CollaborationLevel.Text, "Not available: MoCo fine-tunes the debating agents on their own debates; use multiagent_refine.",
    Aliases = ["text_multiagent_finetuning"], MinModels = 1, Reference = "Multiagent Finetuning (Subramaniam et al., 2025), https://arxiv.org/abs/2501.05707")]
public sealed class MultiagentFinetuningMethod : CollaborationMethod<MultiagentFinetuningOptions>
{
    /// <inheritdoc />
    protected override void Validate(MultiagentFinetuningOptions options, MethodPlan plan) =>
        throw plan.Error("is not available in Consort: it fine-tunes every debating agent (LoRA SFT on GPUs) on its own debates, and methods in Consort do not train their members; "
                         + "multiagent_refine runs the same debate without the fine-tuning");

    /// <inheritdoc />
    protected override Task<ConsortModel> CreateAsync(MethodContext context, MultiagentFinetuningOptions options, CancellationToken cancellationToken) =>
        throw new ConfigException("multiagent_finetuning is not available in Consort");
}
