using System.Globalization;
using Consort.Methods.Weight.Search;
using Consort.Optimization;

namespace Consort.Methods.Weight;

/// <summary>Options of <see cref="LoraHubMethod"/> (MoCo's weight_lorahub names and defaults).</summary>
public sealed class LoraHubOptions : WeightSearchOptions
{
    /// <summary>Dev examples each candidate is scored on (MoCo: lorahub_dev_samples, default 5).</summary>
    [Option("Dev examples each candidate is scored on: a seeded sample, stratified by group; all when fewer.",
        Min = 1, Max = 1_000_000, Aliases = ["dev_samples", "lorahub_dev_samples"])]
    public override int DevSize { get; set; } = 5;

    /// <summary>Evaluation budget.</summary>
    [Option("Candidate evaluations in all (the optimizer's budget); the first is the starting point, every coefficient 0 (the base).",
        Min = 1, Max = Limits.MaxSearchSteps)]
    public int MaxInferenceStep { get; set; } = 20;

    /// <summary>Coefficient bound.</summary>
    [Option("Each adapter's coefficient is searched in [-lora_weight_bound, lora_weight_bound].", MinExclusive = true, Min = 0, Max = 100)]
    public double LoraWeightBound { get; set; } = 1.5;

    /// <summary>L1 weight.</summary>
    [Option("Weight of the L1 penalty: objective = (1 - dev score) + regular_coef x mean |coefficient| (lower is better).", Min = 0, Max = 100)]
    public double RegularCoef { get; set; } = 0.05;

    /// <summary>CMA-ES population.</summary>
    [Option("Candidates per CMA-ES generation.", Min = 2, Max = Limits.MaxSearchSteps, DefaultText = "4 + floor(3 ln n) for n adapters")]
    public int? Population { get; set; }

    /// <summary>CMA-ES initial step size.</summary>
    [Option("Initial CMA-ES step size, in coefficient units.", MinExclusive = true, Min = 0, Max = 100)]
    public double Sigma { get; set; } = 0.5;
}

/// <summary>
/// <c>lorahub</c>: LoraHub's gradient-free composition of LoRA adapters of one base. A seeded CMA-ES searches one
/// coefficient per adapter inside ±lora_weight_bound, minimizing (1 - dev score) + regular_coef · mean |w| with
/// max_inference_step evaluations in all, starting from all coefficients 0 (the base). Each candidate is the base with
/// every adapter applied by llama.cpp at load time at scale w_i (base + Σ w_i ΔW_i with ΔW = B A, never averaging A and B),
/// so no weights are written per candidate. Progress is logged; every evaluation is memoized in the search folder, so a
/// killed search resumes; the best combination is written as a mergekit recipe (best.yml) and a merged best.gguf.
/// </summary>
[CollaborationMethod("lorahub", CollaborationLevel.Weight,
    "LoraHub: CMA-ES over one coefficient per LoRA adapter (base + sum w_i dW_i, applied at load time), dev error + L1 penalty.",
    Aliases = ["weight_lorahub"], Reference = "LoraHub: Efficient Cross-Task Generalization via Dynamic LoRA Composition (Huang et al., 2024), https://arxiv.org/abs/2307.13269",
    Requires = ModelAccess.Weights, MinModels = 1)]
public sealed class LoraHubMethod : CollaborationMethod<LoraHubOptions>
{
    /// <inheritdoc />
    protected override void Validate(LoraHubOptions options, MethodPlan plan) =>
        WeightSearch.CheckLoraMembers(plan, "lorahub combines LoRA adapters of one base (e.g. zoo:arith-lora)");

    /// <inheritdoc />
    protected override ModelDescriptor Describe(LoraHubOptions options, MethodPlan plan) => WeightSearch.Describe(plan);

    /// <inheritdoc />
    protected override async Task<ConsortModel> CreateAsync(MethodContext context, LoraHubOptions options, CancellationToken cancellationToken)
    {
        var search = WeightSearch.Start(context, options, Name);
        int n = context.Models.Count, budget = options.MaxInferenceStep, used = 0;
        double bound = options.LoraWeightBound;
        double[] best = new double[n];
        double bestObjective = double.PositiveInfinity, bestScore = double.NaN;

        async Task<double> Evaluate(double[] w, string label)
        {
            used++;
            double score = await search.ScoreAdaptersAsync(w, w, $"{label} {Text(w)}", cancellationToken).ConfigureAwait(false);
            double objective = Objective(score, w, options.RegularCoef);
            if (objective < bestObjective) { bestObjective = objective; best = (double[])w.Clone(); bestScore = score; }
            search.Say($"evaluation {used}/{budget}: objective {objective:F4} (best {bestObjective:F4})");
            return objective;
        }

        double startObjective = await Evaluate(new double[n], "start (all 0: the base)").ConfigureAwait(false);
        var cma = new CmaEs(new double[n], options.Sigma, new CmaEsOptions
        {
            PopulationSize = options.Population, Seed = (ulong)(uint)context.Seed,
            LowerBounds = Enumerable.Repeat(-bound, n).ToArray(), UpperBounds = Enumerable.Repeat(bound, n).ToArray(),
        });
        while (used < budget && cma.StopReason is null)
        {
            var candidates = cma.Ask();
            var fitness = new double[candidates.Count];
            int k = 0;
            // A generation cut short by the budget is scored as far as it goes (its candidates still count for the best).
            for (; k < candidates.Count && used < budget; k++)
                fitness[k] = await Evaluate(candidates[k], $"generation {cma.Generation + 1}, candidate {k + 1}").ConfigureAwait(false);
            if (k < candidates.Count) break;
            cma.Tell(candidates, fitness);
            search.Say($"generation {cma.Generation}: best objective {bestObjective:F4}, mean {Text([.. cma.Mean])}, sigma {cma.Sigma:G3}");
        }
        search.Say($"best coefficients {Text(best)}: dev {bestScore:F4}, objective {bestObjective:F4} (start {startObjective:F4}) after {used} evaluations");
        return await search.FinishAdaptersAsync(best,
            [$"consort {Name}: base + sum of coefficient x adapter, coefficients {Text(best)}",
             $"dev score {bestScore:F4}, objective {bestObjective:F4} (start {startObjective:F4}) on {search.Examples.Count} examples, {used} evaluations, seed {context.Seed}"],
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>LoraHub's objective: (1 - dev score) + coef x mean |w| (lower is better).</summary>
    public static double Objective(double score, IReadOnlyList<double> w, double coef) => (1 - score) + coef * w.Sum(Math.Abs) / w.Count;

    private static string Text(double[] v) => "[" + string.Join(", ", v.Select(x => x.ToString("F3", CultureInfo.InvariantCulture))) + "]";
}
