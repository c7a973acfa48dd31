using Consort.Methods.Logit.Alignment;

namespace Consort.Methods.Logit;

/// <summary>
/// Turns the members' next-token distributions (one per member, over one vocabulary) into the logits of a fused
/// distribution. <see cref="FusedTokenModel"/> calls it every decode step; the methods of the logit level differ only
/// in their combiner.
/// </summary>
public interface ILogitCombiner
{
    /// <summary>Fused logits over the vocabulary (not normalized; -infinity for impossible tokens), and whether they
    /// were computed from some member's top-k log-probabilities only (then they are approximate).</summary>
    (float[] Logits, bool Approximate) Combine(IReadOnlyList<TokenDistribution> members);

    /// <summary>What the trace shows for member <paramref name="index"/> (its weight or coefficient).</summary>
    Dictionary<string, object?> MemberData(int index);
}

/// <summary>A weighted mixture or product of experts (<c>logit_fusion</c>); top-k members are fused over the union of
/// the members' top-k sets (<see cref="TopKUnion"/>).</summary>
/// <param name="Weights">Member weights (normalized for a mixture).</param>
/// <param name="Mode">Mixture or product.</param>
public sealed record WeightedCombiner(IReadOnlyList<double> Weights, FusionCombine Mode) : ILogitCombiner
{
    /// <inheritdoc />
    public (float[] Logits, bool Approximate) Combine(IReadOnlyList<TokenDistribution> members)
    {
        if (members.All(m => m.Kind == DistributionKind.FullLogits))
            return (FusedTokenModel.CombineLogProbs(members.Select(m => m.LogProbabilities()).ToArray(), Weights, Mode), false);
        return TopKUnion.Combine(members, Weights, Mode);
    }

    /// <inheritdoc />
    public Dictionary<string, object?> MemberData(int index) => new() { ["weight"] = Weights[index], ["combine"] = Mode.ToString().ToLowerInvariant() };
}

/// <summary>
/// Signed arithmetic Σ c_i log p_i (<see cref="LogitArithmetic"/>), optionally restricted to the tokens member
/// <see cref="MaskMember"/> finds plausible (probability at least <see cref="Alpha"/> times its most likely token's).
/// With top-k members the arithmetic runs over the union of the top-k sets, each member renormalized there.
/// </summary>
/// <param name="Coefficients">One coefficient per member (negative ones subtract).</param>
/// <param name="Roles">One role per member for traces (e.g. "expert", "amateur").</param>
/// <param name="MaskMember">Member whose plausibility mask applies, or null for none.</param>
/// <param name="Alpha">The mask's threshold relative to that member's largest probability.</param>
public sealed record ArithmeticCombiner(IReadOnlyList<double> Coefficients, IReadOnlyList<string> Roles, int? MaskMember = null, double Alpha = 0) : ILogitCombiner
{
    /// <inheritdoc />
    public (float[] Logits, bool Approximate) Combine(IReadOnlyList<TokenDistribution> members)
    {
        if (members.All(m => m.Kind == DistributionKind.FullLogits))
        {
            var lps = members.Select(m => m.LogProbabilities()).ToArray();
            var scores = LogitArithmetic.Combine(lps, Coefficients);
            if (MaskMember is { } e) LogitArithmetic.ApplyPlausibility(scores, lps[e], Alpha);
            return (scores, false);
        }
        var ids = TopKUnion.Candidates(members);
        var per = members.Select(m => TopKUnion.Restrict(m, ids)).ToArray();
        var local = LogitArithmetic.Combine(per, Coefficients);
        if (MaskMember is { } m) LogitArithmetic.ApplyPlausibility(local, per[m], Alpha);
        return (TopKUnion.Scatter(local, ids, members[0].VocabularySize), true);
    }

    /// <inheritdoc />
    public Dictionary<string, object?> MemberData(int index)
    {
        var d = new Dictionary<string, object?> { ["coefficient"] = Coefficients[index], ["part"] = Roles[index] };
        if (MaskMember == index) d["plausibility_alpha"] = Alpha;
        return d;
    }
}
