using Consort.Methods.Weight.Search;

namespace Consort.Methods.Weight;

/// <summary>Which weaker and stronger models expo extrapolates between.</summary>
public enum ExpoMode
{
    /// <summary>From the worst member on dev to the best.</summary>
    [OptionValue("worst_to_best")] WorstToBest,
    /// <summary>From the uniform average of the k worst to that of the k best.</summary>
    [OptionValue("topk_bottomk")] TopkBottomk,
}

/// <summary>How expo's alpha is chosen.</summary>
public enum ExpoAlphaMode
{
    /// <summary>The given alpha.</summary>
    [OptionValue("fixed")] Fixed,
    /// <summary>The best of alpha_candidates on dev.</summary>
    [OptionValue("optimized")] Optimized,
}

/// <summary>Options of <see cref="ExpoMethod"/> (MoCo's weight_expo names and defaults).</summary>
public sealed class ExpoOptions : WeightSearchOptions
{
    /// <summary>Source and target selection.</summary>
    [Option("worst_to_best: extrapolate from the worst member on dev to the best; topk_bottomk: from the average of the k worst to that of the k best.")]
    public ExpoMode Mode { get; set; } = ExpoMode.WorstToBest;

    /// <summary>Extrapolation coefficient.</summary>
    [Option("Extrapolation coefficient: result = target + alpha (target - source).", Min = 0, Max = 100)]
    public double Alpha { get; set; } = 0.3;

    /// <summary>Fixed or optimized alpha.</summary>
    [Option("fixed: use alpha; optimized: the best of alpha_candidates on dev.")]
    public ExpoAlphaMode AlphaMode { get; set; } = ExpoAlphaMode.Fixed;

    /// <summary>Alphas tried in optimized mode.</summary>
    [Option("Alphas tried when alpha_mode is optimized.", Min = 0, Max = 100)]
    public double[] AlphaCandidates { get; set; } = [0.1, 0.2, 0.3, 0.4, 0.5];

    /// <summary>Models per side in topk_bottomk mode.</summary>
    [Option("Members averaged on each side in topk_bottomk mode (at most half the members).", Min = 1, Max = Limits.MaxRepeats)]
    public int K { get; set; } = 1;
}

/// <summary>
/// <c>expo</c>: model extrapolation (ExPO). Members are scored on dev; with source S (the worst, or the uniform average of
/// the k worst) and target T (the best, or the average of the k best) the result is T + alpha (T - S), one linear merge
/// with coefficients (1 + alpha)/k and -alpha/k. Alpha is fixed or the best of alpha_candidates on dev.
/// </summary>
[CollaborationMethod("expo", CollaborationLevel.Weight,
    "Model extrapolation: best + alpha (best - worst) on dev (or top-k vs bottom-k averages), alpha fixed or chosen on dev.",
    Aliases = ["weight_expo"], Reference = "Weak-to-Strong Extrapolation Expedites Alignment (Zheng et al., 2024), https://arxiv.org/abs/2404.16792",
    Requires = ModelAccess.Weights, MinModels = 2)]
public sealed class ExpoMethod : CollaborationMethod<ExpoOptions>
{
    /// <inheritdoc />
    protected override void Validate(ExpoOptions options, MethodPlan plan)
    {
        if (options.Mode == ExpoMode.TopkBottomk && options.K > plan.Members.Count / 2)
            throw plan.Error("k", $"= {options.K} is more than half of the {plan.Members.Count} members (the top k and bottom k must not overlap)");
        if (options.AlphaMode == ExpoAlphaMode.Optimized && options.AlphaCandidates.Length == 0)
            throw plan.Error("alpha_candidates", "is empty; alpha_mode optimized needs at least one");
        WeightSearch.CheckMembers(plan);
    }

    /// <inheritdoc />
    protected override ModelDescriptor Describe(ExpoOptions options, MethodPlan plan) => WeightSearch.Describe(plan);

    /// <inheritdoc />
    protected override async Task<ConsortModel> CreateAsync(MethodContext context, ExpoOptions options, CancellationToken cancellationToken)
    {
        var search = WeightSearch.Start(context, options, Name);
        int n = context.Models.Count;
        var scores = new double[n];
        for (int i = 0; i < n; i++) scores[i] = await search.ScoreMemberAsync(i, cancellationToken).ConfigureAwait(false);
        var ranked = Enumerable.Range(0, n).OrderByDescending(i => scores[i]).ThenBy(i => i).ToList();
        int k = options.Mode == ExpoMode.WorstToBest ? 1 : options.K;
        var top = ranked.Take(k).ToList();
        var bottom = ranked.Skip(n - k).ToList();
        string Names(IEnumerable<int> ms) => "{" + string.Join(", ", ms.Select(i => context.Models[i].Name)) + "}";
        search.Say($"extrapolating from {Names(bottom)} to {Names(top)}");
        double alpha = options.Alpha, best = double.NaN;
        if (options.AlphaMode == ExpoAlphaMode.Optimized)
        {
            best = double.NegativeInfinity;
            foreach (var a in options.AlphaCandidates)
            {
                var p = Coefficients(top, bottom, a, n);
                double s = await search.ScoreRecipeAsync(search.Linear(p), p, $"alpha {a:G4}", cancellationToken).ConfigureAwait(false);
                // First best wins ties, as MoCo's strict '>'.
                if (s > best) { best = s; alpha = a; }
            }
            search.Say($"alpha {alpha:G4} chosen (dev {best:F4})");
        }
        var final = Coefficients(top, bottom, alpha, n);
        return await search.FinishAsync(search.Linear(final,
            [$"consort {Name}: {Names(top)} + {alpha:G4} x ({Names(top)} - {Names(bottom)})",
             double.IsNaN(best) ? $"alpha fixed, seed {context.Seed}" : $"dev score {best:F4} on {search.Examples.Count} examples, seed {context.Seed}"]), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>(1 + alpha) x mean(top) - alpha x mean(bottom), as per-member coefficients.</summary>
    public static double[] Coefficients(IReadOnlyList<int> top, IReadOnlyList<int> bottom, double alpha, int n)
    {
        var w = new double[n];
        foreach (var t in top) w[t] += (1 + alpha) / top.Count;
        foreach (var b in bottom) w[b] -= alpha / bottom.Count;
        return w;
    }
}
