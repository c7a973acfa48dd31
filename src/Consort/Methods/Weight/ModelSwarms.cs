using System.Globalization;
using Consort.Methods.Weight.Search;
using Consort.Optimization;

namespace Consort.Methods.Weight;

/// <summary>Options of <see cref="ModelSwarmsMethod"/> (MoCo's weight_model_swarms names and defaults).</summary>
public sealed class ModelSwarmsOptions : WeightSearchOptions
{
    /// <summary>LoRA members combine as base + Σ c_i B_i A_i.</summary>
    [Option("For LoRA members (adapters of one base): each particle is base + sum of c_i x dW_i with dW = B A, applied by llama.cpp at load time " +
            "(never averaging A and B separately). Required for LoRA members; whole models merge linearly either way.")]
    public bool FastMergeFlag { get; set; }

    /// <summary>MoCo's base model (its embeddings sized the merge); unused here.</summary>
    [Option("MoCo's model whose vocabulary sizes the merge; members must share one architecture here, so it is not needed.", Ignored = true)]
    public string? BaseModel { get; set; }

    /// <summary>MoCo's particle folder; particles live in memory here.</summary>
    [Option("MoCo's folder of particle checkpoints; here particles are coefficient vectors in memory (see search_dir).", Ignored = true)]
    public string? SwarmBasePath { get; set; }

    /// <summary>Random factors on the four weights.</summary>
    [Option("Draw random factors for the inertia, cognitive, social and repel weights every step.", Aliases = ["weight_randomness"])]
    public bool WeightRandomnessFlag { get; set; } = true;

    /// <summary>Inertia.</summary>
    [Option("Weight of a particle's own velocity.", Min = 0, Max = 10)]
    public double Inertia { get; set; } = 0.2;

    /// <summary>Pull to the personal best.</summary>
    [Option("Weight of the pull to the particle's own best.", Min = 0, Max = 10, Aliases = ["cognitive_coeff"])]
    public double CognitiveCoefficient { get; set; } = 0.3;

    /// <summary>Pull to the global best.</summary>
    [Option("Weight of the pull to the swarm's best.", Min = 0, Max = 10, Aliases = ["social_coeff"])]
    public double SocialCoefficient { get; set; } = 0.4;

    /// <summary>Push from the global worst.</summary>
    [Option("Weight of the push away from the swarm's worst.", Min = 0, Max = 10, Aliases = ["repel_coeff"])]
    public double RepelCoefficient { get; set; } = 0.05;

    /// <summary>Whether to repel.</summary>
    [Option("Use the repel term.", Aliases = ["repel_term"])]
    public bool RepelTermFlag { get; set; } = true;

    /// <summary>First step length.</summary>
    [Option("Step length of the first iteration.", MinExclusive = true, Min = 0, Max = 10)]
    public double StepLength { get; set; } = 0.5;

    /// <summary>Step length decay.</summary>
    [Option("Step length multiplier per iteration.", MinExclusive = true, Min = 0, Max = 1)]
    public double StepLengthFactor { get; set; } = 0.95;

    /// <summary>Step length floor.</summary>
    [Option("Step length floor.", Min = 0, Max = 10)]
    public double MinimumStepLength { get; set; } = 0.1;

    /// <summary>Stop after this many iterations without improvement.</summary>
    [Option("Stop when the swarm's best has not improved for this many iterations.", Min = 1, Max = Limits.MaxSearchSteps)]
    public int Patience { get; set; } = 5;

    /// <summary>Restart a stuck particle.</summary>
    [Option("Send a particle back to its best (with a fresh random velocity) when it has not improved for this many iterations.", Min = 1, Max = Limits.MaxSearchSteps)]
    public int RestartPatience { get; set; } = 3;

    /// <summary>Iterations.</summary>
    [Option("Most iterations (each scores every particle on dev).", Min = 1, Max = Limits.MaxSearchSteps)]
    public int MaxIterations { get; set; } = 10;
}

/// <summary>
/// <c>model_swarms</c>: Model Swarms (Feng et al.): the members are the particles of a swarm in weight space. Each particle
/// starts at its member with a velocity towards another member drawn at random (MoCo's "random" start); every iteration
/// scores all particles on dev, then moves each by step_length along inertia · v + cognitive · (personal best − x) +
/// social · (global best − x) − repel · (global worst − x), with random, normalized weights and a shrinking step. Since every
/// move is a linear combination of models, a particle is exactly Σ c_i W_i for a coefficient vector c kept in memory: whole
/// models are merged into tmpfs per evaluation and deleted; LoRA members (fast_merge_flag) are base + Σ c_i B_i A_i applied
/// at load time, so nothing is written per particle. Evaluations are memoized in the search folder (a killed search
/// resumes), progress is logged, and the global best is written as a mergekit recipe (best.yml) and best.gguf.
/// </summary>
[CollaborationMethod("model_swarms", CollaborationLevel.Weight,
    "Model Swarms: particle swarm in weight space starting from the members (inertia, personal/global best, global worst), scored on dev.",
    Aliases = ["weight_model_swarms"], Reference = "Model Swarms: Collaborative Search to Adapt LLM Experts via Swarm Intelligence (Feng et al., 2024), https://arxiv.org/abs/2410.11163",
    Requires = ModelAccess.Weights, MinModels = 2)]
public sealed class ModelSwarmsMethod : CollaborationMethod<ModelSwarmsOptions>
{
    /// <inheritdoc />
    protected override void Validate(ModelSwarmsOptions options, MethodPlan plan)
    {
        bool lora = plan.Members.Any(m => m.Adapters.Count > 0);
        if (lora && !options.FastMergeFlag)
            throw plan.Error("fast_merge_flag", "is off but the members are LoRA adapters: set fast_merge_flag: 1 to combine them as base + sum of c_i x B_i A_i");
        if (lora) WeightSearch.CheckLoraMembers(plan, "with LoRA members every member must be an adapter of one base");
        else WeightSearch.CheckMembers(plan);
    }

    /// <inheritdoc />
    protected override ModelDescriptor Describe(ModelSwarmsOptions options, MethodPlan plan) => WeightSearch.Describe(plan);

    /// <inheritdoc />
    protected override async Task<ConsortModel> CreateAsync(MethodContext context, ModelSwarmsOptions options, CancellationToken cancellationToken)
    {
        var search = WeightSearch.Start(context, options, Name);
        int n = context.Models.Count;
        bool lora = context.Models.Any(m => m.Descriptor.Adapters.Count > 0);
        var swarm = Start(n, Settings(options, n, context.Seed), context.Seed);
        var progress = new Progress<SwarmProgress>(p => search.Say(
            $"iteration {p.Iteration}/{p.MaxIterations}: best {p.BestScore:F4}, this iteration best {p.IterationBest:F4}, mean {p.IterationMean:F4}{(p.Stopped ? " (stopped)" : "")}"));
        var (best, score) = await swarm.OptimizeAsync(async (c, particle, ct) =>
        {
            int member = OneHot(c);
            string label = $"particle {particle + 1} {Text(c)}";
            if (member >= 0) return await search.ScoreMemberAsync(member, ct).ConfigureAwait(false);
            return lora ? await search.ScoreAdaptersAsync(c, c, label, ct).ConfigureAwait(false)
                        : await search.ScoreRecipeAsync(search.Linear(c), c, label, ct).ConfigureAwait(false);
        }, progress, 1, cancellationToken).ConfigureAwait(false);
        double startBest = swarm.State.Histories.Max(h => h.Length > 0 ? h[0] : double.NegativeInfinity);
        search.Say($"global best {Text(best)}: dev {score:F4} (best member {startBest:F4}) after {swarm.Iteration} iteration(s)");
        IReadOnlyList<string> comments =
        [
            $"consort {Name}: sum of coefficient x member{(lora ? " adapter (base + sum c_i B_i A_i)" : "")}, coefficients {Text(best)}",
            $"dev score {score:F4} (best member {startBest:F4}) on {search.Examples.Count} examples, {swarm.Iteration} iterations, seed {context.Seed}",
        ];
        return lora ? await search.FinishAdaptersAsync(best, comments, cancellationToken).ConfigureAwait(false)
                    : await search.FinishAsync(search.Linear(best, comments), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The swarm's settings: MoCo's, one particle per member, positions not clamped (MoCo's swarm moves freely).</summary>
    public static ParticleSwarmOptions Settings(ModelSwarmsOptions o, int members, int seed) => new()
    {
        Population = members, MaxIterations = o.MaxIterations, Inertia = o.Inertia, CognitiveCoeff = o.CognitiveCoefficient,
        SocialCoeff = o.SocialCoefficient, RepelCoeff = o.RepelCoefficient, RepelTerm = o.RepelTermFlag, WeightRandomness = o.WeightRandomnessFlag,
        StepLength = o.StepLength, StepLengthFactor = o.StepLengthFactor, MinimumStepLength = o.MinimumStepLength,
        Patience = o.Patience, RestartPatience = o.RestartPatience, StartingVelocity = StartingVelocity.Random,
        // The bounds only scale the random velocity of a restarted particle (±1 in coefficient units).
        LowerBound = -1, UpperBound = 1, Clamp = false, Seed = seed,
    };

    /// <summary>
    /// The starting swarm: particle i at member i (coefficients e_i), its velocity e_j − e_i towards a member j ≠ i drawn with
    /// the seed (MoCo's start), personal bests unset; the swarm's own generator continues from the same seed.
    /// </summary>
    public static ParticleSwarm Start(int n, ParticleSwarmOptions settings, int seed)
    {
        var rng = new Random(seed);
        var x = new double[n][];
        var v = new double[n][];
        for (int i = 0; i < n; i++)
        {
            x[i] = new double[n]; x[i][i] = 1;
            int j = rng.Next(n - 1);
            if (j >= i) j++;
            v[i] = new double[n]; v[i][j] = 1; v[i][i] = -1;
        }
        var fresh = new ParticleSwarm(n, settings).State;
        return ParticleSwarm.Restore(fresh with
        {
            Positions = x, Velocities = v, PersonalBest = x.Select(p => (double[])p.Clone()).ToArray(),
            PersonalBestScores = new double?[n], Histories = Enumerable.Range(0, n).Select(_ => Array.Empty<double>()).ToArray(),
        }, settings);
    }

    private static int OneHot(double[] c)
    {
        int k = -1;
        for (int i = 0; i < c.Length; i++)
        {
            if (c[i] == 0) continue;
            if (c[i] != 1 || k >= 0) return -1;
            k = i;
        }
        return k;
    }

    private static string Text(double[] v) => "[" + string.Join(", ", v.Select(x => x.ToString("F3", CultureInfo.InvariantCulture))) + "]";
}
