namespace Consort.Methods.Logit;

/// <summary>Options of <see cref="LogitContrastiveMethod"/>.</summary>
public sealed class LogitContrastiveOptions : MethodOptions
{
    /// <summary>How many best and worst members take part.</summary>
    [Option("The k best members (on dev) are added and the k worst subtracted; 2k must not exceed the member count.", Min = 1, Max = Limits.MaxRepeats)]
    public int K { get; set; } = 1;

    /// <summary>Scale of the contrast.</summary>
    [Option("Logits = best + lambda x (sum of the top-k - sum of the bottom-k).", Aliases = ["lambda_"], Min = 0, Max = 10)]
    public double Lambda { get; set; } = 0.2;

    /// <summary>A fixed ranking instead of one measured on dev.</summary>
    [Option("Every member's name, best first (instead of ranking the members on dev).", DefaultText = "by dev score")]
    public string[]? Ranking { get; set; }

    /// <summary>Dev examples the ranking is measured on.</summary>
    [Option("Dev examples each member answers to rank the members (a seeded, stratified sample).", Min = 1, Max = 100_000)]
    public int DevSamples { get; set; } = 32;
}

/// <summary>
/// <c>logit_contrastive</c> (MoCo's <c>logit_logit_contrastive</c>): rank the members by their dev score, then decode
/// with best + lambda x (Σ top-k − Σ bottom-k) in log-probability space (equal to MoCo's raw-logit form up to a constant
/// per step, which the softmax removes).
/// </summary>
[CollaborationMethod("logit_contrastive", CollaborationLevel.Logit, "Rank members on dev; decode with best + lambda x (top-k - bottom-k) logits.",
    Aliases = ["logit_logit_contrastive"], Reference = "MoCo (BunsenFeng/model_collaboration), logit_logit_contrastive",
    Requires = ModelAccess.Tokens, SharedVocabulary = true, MinModels = 2)]
public sealed class LogitContrastiveMethod : CollaborationMethod<LogitContrastiveOptions>
{
    /// <inheritdoc />
    protected override void Validate(LogitContrastiveOptions options, MethodPlan plan)
    {
        int n = plan.Members.Count;
        if (2 * options.K > n) throw plan.Error("k", $"is {options.K}, but {n} models give at most k = {n / 2} (the top-k and bottom-k must be different models)");
        if (options.Ranking is { } r)
        {
            var names = plan.Members.Select(m => m.Name).ToList();
            foreach (var name in r)
                if (!names.Contains(name)) throw plan.Error("ranking", $"names '{Limits.ForMessage(name)}', which is not a member (members: {string.Join(", ", names)})");
            if (r.Length != n || r.Distinct().Count() != n)
                throw plan.Error("ranking", $"must list each of the {n} members once, got [{string.Join(", ", r.Select(Limits.ForMessage))}]");
        }
        else if (!plan.HasDev)
            throw plan.Error("needs 'ranking' or a task with a dev split to rank the members on");
    }

    /// <inheritdoc />
    protected override ModelDescriptor Describe(LogitContrastiveOptions options, MethodPlan plan) => FusedLogitModel.Describe(plan);

    /// <inheritdoc />
    protected override async Task<ConsortModel> CreateAsync(MethodContext context, LogitContrastiveOptions options, CancellationToken cancellationToken)
    {
        var models = context.Models;
        int[] order = options.Ranking is { } r
            ? r.Select(name => models.ToList().FindIndex(m => m.Name == name)).ToArray()
            : await RankOnDevAsync(context, options, cancellationToken).ConfigureAwait(false);
        var coefficients = Coefficients(order, models.Count, options.K, options.Lambda);
        var roles = new string[models.Count];
        for (int j = 0; j < order.Length; j++) roles[order[j]] = j < options.K ? $"top {j + 1}" : j >= order.Length - options.K ? $"bottom {order.Length - j}" : "unused";
        context.Log?.Invoke($"{context.Name}: coefficients {string.Join(", ", models.Select((m, i) => $"{m.Name} {coefficients[i]:+0.###;-0.###;0}"))}");
        return FusedLogitModel.Create(context, Name, options, new ArithmeticCombiner(coefficients, roles));
    }

    /// <summary>Coefficients per member for a ranking (member indices, best first): the best gets 1 + lambda, the other
    /// top-k lambda, the bottom-k −lambda, the rest 0.</summary>
    public static double[] Coefficients(IReadOnlyList<int> ranking, int members, int k, double lambda)
    {
        var c = new double[members];
        c[ranking[0]] += 1;
        for (int j = 0; j < k; j++)
        {
            c[ranking[j]] += lambda;
            c[ranking[ranking.Count - 1 - j]] -= lambda;
        }
        return c;
    }

    /// <summary>Member indices, best mean dev score first (ties: config order).</summary>
    private async Task<int[]> RankOnDevAsync(MethodContext context, LogitContrastiveOptions options, CancellationToken ct)
    {
        if (context.Dev is not { Examples.Count: > 0 } dev)
            throw new ConfigException($"method '{Name}' needs 'ranking' or a task with a dev split to rank the members on");
        var examples = dev.Sample(options.DevSamples, context.Seed);
        var models = context.Models;
        var scores = new double[models.Count];
        for (int i = 0; i < models.Count; i++)
        {
            var member = models[i];
            // Rank on outputs made the way test outputs will be made (the task's length, stop strings), seeded.
            var s = await CollaborationChatClient.ParallelAsync(examples, context.MaxConcurrency, async (ex, j, token) =>
            {
                var response = await member.Chat.GetResponseAsync(ex.Messages, options.Apply(ex.Options, context.Seed + j), token).ConfigureAwait(false);
                return ex.Score(response.Text);
            }, ct).ConfigureAwait(false);
            scores[i] = s.Average();
            context.Log?.Invoke($"{context.Name}: '{member.Name}' dev score {scores[i]:0.000} on {examples.Count} examples");
        }
        return Enumerable.Range(0, models.Count).OrderByDescending(i => scores[i]).ThenBy(i => i).ToArray();
    }
}
