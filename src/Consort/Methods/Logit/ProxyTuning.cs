namespace Consort.Methods.Logit;

/// <summary>Options of <see cref="ProxyTuningMethod"/>.</summary>
public sealed class ProxyTuningOptions : MethodOptions
{
    /// <summary>Strength of the expert's offset.</summary>
    [Option("Logits = base + alpha x (expert - anti_expert).", Min = 0, Max = 10)]
    public double Alpha { get; set; } = 1.0;
}

/// <summary>
/// <c>proxy_tuning</c> (Liu et al., 2024; DExperts, Liu et al., 2021): members are base, expert and anti-expert, in that
/// order; the next-token distribution is softmax(log p_base + alpha x (log p_expert - log p_anti)), so what tuning taught
/// the small expert (relative to its untuned anti-expert) steers the base. Each model keeps its own KV cache.
/// </summary>
[CollaborationMethod("proxy_tuning", CollaborationLevel.Logit, "Base + alpha x (expert - anti-expert) in logit space (members: base, expert, anti-expert).",
    Aliases = ["logit_proxy_tuning", "dexperts"], Reference = "Liu et al., Tuning Language Models by Proxy (COLM 2024), https://arxiv.org/abs/2401.08565",
    Requires = ModelAccess.Tokens, SharedVocabulary = true, MinModels = 3, MaxModels = 3)]
public sealed class ProxyTuningMethod : CollaborationMethod<ProxyTuningOptions>
{
    /// <inheritdoc />
    protected override ModelDescriptor Describe(ProxyTuningOptions options, MethodPlan plan) => FusedLogitModel.Describe(plan);

    /// <inheritdoc />
    protected override Task<ConsortModel> CreateAsync(MethodContext context, ProxyTuningOptions options, CancellationToken cancellationToken) =>
        Task.FromResult(FusedLogitModel.Create(context, Name, options,
            new ArithmeticCombiner([1.0, options.Alpha, -options.Alpha], ["base", "expert", "anti_expert"])));
}
