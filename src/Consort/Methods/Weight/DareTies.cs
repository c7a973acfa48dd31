using Consort.Config;
using Consort.Methods.Weight.Search;
using Consort.Optimization;

namespace Consort.Methods.Weight;

/// <summary>How dare_ties weights its members.</summary>
public enum DareTiesMode
{
    /// <summary>Uniform weights, the given density.</summary>
    [OptionValue("average")] Average,
    /// <summary>Particle swarm over per-member weights and densities, scored on dev.</summary>
    [OptionValue("optimized")] Optimized,
}

/// <summary>Options of <see cref="DareTiesMethod"/> (MoCo's weight_dare_ties names and defaults, plus the density MoCo leaves out).</summary>
public sealed class DareTiesOptions : WeightSearchOptions
{
    /// <summary>Uniform or optimized weights.</summary>
    [Option("average: uniform weights; optimized: a particle swarm over per-member weights (softmax) and densities on dev.")]
    public DareTiesMode Mode { get; set; } = DareTiesMode.Average;

    /// <summary>The base model task vectors are taken against.</summary>
    [Option("Base model the task vectors are taken against: a member's name or a GGUF path (relative to the config).", DefaultText = "(required)")]
    public string? BaseModelName { get; set; }

    /// <summary>Share of each task vector DARE keeps.</summary>
    [Option("Share of each task vector's entries DARE keeps (rescaled by 1/density); in optimized mode the swarm's starting range is [min_density, 1].", MinExclusive = true, Min = 0, Max = 1)]
    public double Density { get; set; } = 0.5;

    /// <summary>Lowest density the swarm may pick.</summary>
    [Option("Lowest density the swarm may choose (optimized mode).", MinExclusive = true, Min = 0, Max = 1)]
    public double MinDensity { get; set; } = 0.1;

    /// <summary>Particles.</summary>
    [Option("Particles of the swarm (optimized mode).", Min = 1, Max = Limits.MaxSearchSteps)]
    public int Population { get; set; } = 5;

    /// <summary>Iterations.</summary>
    [Option("Most swarm iterations (optimized mode).", Min = 1, Max = Limits.MaxSearchSteps)]
    public int MaxIterations { get; set; } = 5;

    /// <summary>Swarm inertia.</summary>
    [Option("Swarm: weight of a particle's own velocity.", Min = 0, Max = 10)]
    public double Inertia { get; set; } = 0.2;

    /// <summary>Swarm pull to the personal best.</summary>
    [Option("Swarm: weight of the pull to the particle's best.", Min = 0, Max = 10)]
    public double CognitiveCoeff { get; set; } = 0.3;

    /// <summary>Swarm pull to the global best.</summary>
    [Option("Swarm: weight of the pull to the swarm's best.", Min = 0, Max = 10)]
    public double SocialCoeff { get; set; } = 0.4;

    /// <summary>Swarm push from the worst.</summary>
    [Option("Swarm: weight of the push away from the swarm's worst.", Min = 0, Max = 10)]
    public double RepelCoeff { get; set; } = 0.05;

    /// <summary>Whether to repel from the worst.</summary>
    [Option("Swarm: use the repel term.")]
    public bool RepelTerm { get; set; } = true;

    /// <summary>Random factors on the four weights.</summary>
    [Option("Swarm: draw random factors for the four weights every step.")]
    public bool WeightRandomness { get; set; } = true;

    /// <summary>First step length.</summary>
    [Option("Swarm: step length of the first iteration.", MinExclusive = true, Min = 0, Max = 10)]
    public double StepLength { get; set; } = 0.5;

    /// <summary>Step length decay.</summary>
    [Option("Swarm: step length multiplier per iteration.", MinExclusive = true, Min = 0, Max = 1)]
    public double StepLengthFactor { get; set; } = 0.95;

    /// <summary>Step length floor.</summary>
    [Option("Swarm: step length floor.", Min = 0, Max = 10)]
    public double MinimumStepLength { get; set; } = 0.1;

    /// <summary>Stop after this many iterations without improvement.</summary>
    [Option("Swarm: stop when the best has not improved for this many iterations.", Min = 1, Max = Limits.MaxSearchSteps)]
    public int Patience { get; set; } = 5;

    /// <summary>Restart a stuck particle after this many iterations.</summary>
    [Option("Swarm: send a particle back to its best when it has not improved for this many iterations.", Min = 1, Max = Limits.MaxSearchSteps)]
    public int RestartPatience { get; set; } = 3;

    /// <summary>Initial velocities.</summary>
    [Option("Swarm: initial velocities: random or zero.", Allowed = ["random", "zero"])]
    public string StartingVelocityMode { get; set; } = "random";
}

/// <summary>
/// <c>dare_ties</c>: DARE-TIES merge of the members over a base model (mergekit semantics: random drop keeping a share
/// <c>density</c> of each task vector, rescaled, then TIES sign election). Weights are uniform (average) or found by a
/// seeded particle swarm over per-member weights (softmax, as MoCo) and densities, scored on dev. Unlike MoCo, which
/// passes no density (so nothing is dropped), the density is honoured.
/// </summary>
[CollaborationMethod("dare_ties", CollaborationLevel.Weight,
    "DARE-TIES merge over a base model with uniform weights, or weights and densities found by a particle swarm on dev.",
    Aliases = ["weight_dare_ties"], Reference = "Language Models are Super Mario (DARE, Yu et al., 2024), https://arxiv.org/abs/2311.03099",
    Requires = ModelAccess.Weights, MinModels = 1)]
public sealed class DareTiesMethod : CollaborationMethod<DareTiesOptions>
{
    /// <inheritdoc />
    protected override void Validate(DareTiesOptions options, MethodPlan plan)
    {
        if (options.BaseModelName is not { } b) throw plan.Error("base_model_name", "is required: the member or GGUF model the task vectors are taken against");
        if (ModelChoice.MemberIndex(plan.Members, b) is null)
        {
            if (plan.GetService<IModelReferences>() is not null && plan.Loader is not null)
            {
                var spec = ModelChoice.Check(plan, "base_model_name", b);
                if (spec is not GgufModelSpec) throw plan.Error("base_model_name", $"names '{Limits.ForMessage(b)}', which is not a local GGUF model (only weights files can be merged)");
                var d = plan.Loader.Describe(spec);
                var first = plan.Members[0];
                if (!string.Equals(d.Architecture, first.Architecture, StringComparison.OrdinalIgnoreCase) || d.Parameters != first.Parameters)
                    throw plan.Error("base_model_name", $"'{Limits.ForMessage(b)}' ({d.Architecture}, {d.Parameters:N0} parameters) does not share the members' architecture ({first.Architecture}, {first.Parameters:N0} parameters)");
            }
            else if (!File.Exists(Path.GetFullPath(Path.Combine(plan.BaseDirectory, b))))
                throw plan.Error("base_model_name", $"= \"{Limits.ForMessage(b)}\" is neither a member ({string.Join(", ", plan.Members.Select(m => m.Name))}) nor an existing GGUF file");
        }
        if (options.MinDensity > options.Density)
            throw plan.Error("min_density", $"= {options.MinDensity} is above density = {options.Density}");
        WeightSearch.CheckMembers(plan, needsDev: options.Mode == DareTiesMode.Optimized);
    }

    /// <inheritdoc />
    protected override ModelDescriptor Describe(DareTiesOptions options, MethodPlan plan) => WeightSearch.Describe(plan);

    /// <inheritdoc />
    protected override async Task<ConsortModel> CreateAsync(MethodContext context, DareTiesOptions options, CancellationToken cancellationToken)
    {
        int n = context.Models.Count;
        string dir = context.BaseDirectory ?? Environment.CurrentDirectory;
        int baseIndex = Enumerable.Range(0, n).FirstOrDefault(i => string.Equals(context.Models[i].Name, options.BaseModelName, StringComparison.OrdinalIgnoreCase), -1);
        string Base(WeightSearch s) => baseIndex >= 0 ? s.Paths[baseIndex]
            : context.GetService<IModelReferences>()?.Parse(System.Text.Json.Nodes.JsonValue.Create(options.BaseModelName!), dir, $"method '{Name}': hyperparameter 'base_model_name'") is GgufModelSpec g
                ? Path.GetFullPath(g.Path) : Path.GetFullPath(Path.Combine(dir, options.BaseModelName!));
        var weights = Enumerable.Repeat(1.0 / n, n).ToArray();
        var densities = Enumerable.Repeat(options.Density, n).ToArray();
        WeightSearch search;
        if (options.Mode == DareTiesMode.Average)
        {
            // Nothing is scored: the search only provides the folder, the recipe and the final merge.
            search = WeightSearch.Start(context, options, Name, needsDev: false);
        }
        else
        {
            search = WeightSearch.Start(context, options, Name);
            var swarm = new ParticleSwarm(2 * n, new ParticleSwarmOptions
            {
                Population = options.Population, MaxIterations = options.MaxIterations, Inertia = options.Inertia, CognitiveCoeff = options.CognitiveCoeff,
                SocialCoeff = options.SocialCoeff, RepelCoeff = options.RepelCoeff, RepelTerm = options.RepelTerm, WeightRandomness = options.WeightRandomness,
                StepLength = options.StepLength, StepLengthFactor = options.StepLengthFactor, MinimumStepLength = options.MinimumStepLength,
                Patience = options.Patience, RestartPatience = options.RestartPatience,
                StartingVelocity = options.StartingVelocityMode == "zero" ? StartingVelocity.Zero : StartingVelocity.Random,
                // First n coordinates: weight logits (softmax, as MoCo); last n: densities.
                LowerBounds = [.. Enumerable.Repeat(-1.0, n), .. Enumerable.Repeat(options.MinDensity, n)],
                UpperBounds = [.. Enumerable.Repeat(1.0, n), .. Enumerable.Repeat(1.0, n)],
                Seed = context.Seed,
            });
            var progress = new Progress<SwarmProgress>(p => search.Say($"swarm iteration {p.Iteration}/{p.MaxIterations}: best {p.BestScore:F4}, this iteration best {p.IterationBest:F4}, mean {p.IterationMean:F4}{(p.Stopped ? " (stopped)" : "")}"));
            var (best, score) = await swarm.OptimizeAsync(async (x, particle, ct) =>
            {
                var (w, d) = Split(x, n);
                return await search.ScoreRecipeAsync(Recipe(search, Base(search), w, d, context.Seed, []), x, $"particle {particle + 1} (weights {Text(w)}, densities {Text(d)})", ct).ConfigureAwait(false);
            }, progress, 1, cancellationToken).ConfigureAwait(false);
            (weights, densities) = Split(best, n);
            search.Say($"best: weights {Text(weights)}, densities {Text(densities)}, dev {score:F4}");
        }
        return await search.FinishAsync(Recipe(search, Base(search), weights, densities, context.Seed,
            [$"consort {Name} ({(options.Mode == DareTiesMode.Average ? "average" : "optimized")}): weights {Text(weights)}, densities {Text(densities)}, seed {context.Seed}"]),
            cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Softmax of the weight logits, densities clamped into (0, 1].</summary>
    public static (double[] Weights, double[] Densities) Split(double[] x, int n)
    {
        double max = x.Take(n).Max();
        var e = x.Take(n).Select(v => Math.Exp(v - max)).ToArray();
        double sum = e.Sum();
        return (e.Select(v => v / sum).ToArray(), x.Skip(n).Select(v => Math.Clamp(v, 1e-3, 1)).ToArray());
    }

    private static MergeRecipe Recipe(WeightSearch search, string baseModel, double[] weights, double[] densities, int seed, IReadOnlyList<string> comments) => new()
    {
        MergeMethod = "dare_ties", BaseModel = baseModel, Seed = seed, Comments = comments,
        Models = search.Paths.Select((p, i) => new RecipeModel(p, null, new Dictionary<string, double> { ["weight"] = weights[i], ["density"] = densities[i] })).ToList(),
    };

    private static string Text(double[] v) => "[" + string.Join(", ", v.Select(x => x.ToString("F3", System.Globalization.CultureInfo.InvariantCulture))) + "]";
}
