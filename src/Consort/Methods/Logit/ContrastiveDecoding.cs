namespace Consort.Methods.Logit;

/// <summary>Options of <see cref="ContrastiveDecodingMethod"/>.</summary>
public sealed class ContrastiveDecodingOptions : MethodOptions
{
    /// <summary>The plausibility threshold.</summary>
    [Option("Plausibility mask: only tokens whose expert probability is at least alpha x the expert's largest are allowed (0 = no mask).", Min = 0, Max = 1)]
    public double Alpha { get; set; } = 0.1;

    /// <summary>The amateur's weight.</summary>
    [Option("Score = expert log-prob - beta x amateur log-prob.", Min = 0, Max = 10)]
    public double Beta { get; set; } = 0.5;
}

/// <summary>
/// <c>contrastive_decoding</c> (Li et al., 2023): the first member is the expert, the second the amateur; each next
/// token is chosen by log p_expert - beta x log p_amateur among the tokens the expert finds plausible (probability at
/// least alpha x its most likely token's). Both models keep their own KV cache and decode in step.
/// </summary>
[CollaborationMethod("contrastive_decoding", CollaborationLevel.Logit, "Expert log-probs minus beta x amateur log-probs, over the tokens the expert finds plausible.",
    Aliases = ["logit_contrastive_decoding"], Reference = "Li et al., Contrastive Decoding: Open-ended Text Generation as Optimization (ACL 2023), https://arxiv.org/abs/2210.15097",
    Requires = ModelAccess.Tokens, SharedVocabulary = true, MinModels = 2, MaxModels = 2)]
public sealed class ContrastiveDecodingMethod : CollaborationMethod<ContrastiveDecodingOptions>
{
    /// <inheritdoc />
    protected override ModelDescriptor Describe(ContrastiveDecodingOptions options, MethodPlan plan) => FusedLogitModel.Describe(plan);

    /// <inheritdoc />
    protected override Task<ConsortModel> CreateAsync(MethodContext context, ContrastiveDecodingOptions options, CancellationToken cancellationToken) =>
        Task.FromResult(FusedLogitModel.Create(context, Name, options,
            new ArithmeticCombiner([1.0, -options.Beta], ["expert", "amateur"], MaskMember: 0, Alpha: options.Alpha)));
}
