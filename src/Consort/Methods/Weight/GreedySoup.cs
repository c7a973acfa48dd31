using Consort.Methods.Weight.Search;

namespace Consort.Methods.Weight;

/// <summary>Options of <see cref="GreedySoupMethod"/> (MoCo's weight_greedy_soup has no own hyperparameters).</summary>
public sealed class GreedySoupOptions : WeightSearchOptions;

/// <summary>
/// <c>greedy_soup</c>: members are scored alone on dev and sorted best first; the soup starts as the best member and each
/// next member joins only if the uniform average of the soup plus it does not lower the soup's dev score (Wortsman et
/// al.). The final soup is merged (linear, uniform weights), its recipe written as mergekit YAML, and run.
/// </summary>
[CollaborationMethod("greedy_soup", CollaborationLevel.Weight,
    "Greedy model soup: add members best-first to a uniform weight average, keeping each only if the dev score does not drop.",
    Aliases = ["weight_greedy_soup"], Reference = "Model soups (Wortsman et al., 2022), https://arxiv.org/abs/2203.05482",
    Requires = ModelAccess.Weights, MinModels = 2)]
public sealed class GreedySoupMethod : CollaborationMethod<GreedySoupOptions>
{
    /// <inheritdoc />
    protected override void Validate(GreedySoupOptions options, MethodPlan plan) => WeightSearch.CheckMembers(plan);

    /// <inheritdoc />
    protected override ModelDescriptor Describe(GreedySoupOptions options, MethodPlan plan) => WeightSearch.Describe(plan);

    /// <inheritdoc />
    protected override async Task<ConsortModel> CreateAsync(MethodContext context, GreedySoupOptions options, CancellationToken cancellationToken)
    {
        var search = WeightSearch.Start(context, options, Name);
        int n = context.Models.Count;
        var scores = new double[n];
        for (int i = 0; i < n; i++) scores[i] = await search.ScoreMemberAsync(i, cancellationToken).ConfigureAwait(false);
        // Best first; ties keep config order.
        var ranked = Enumerable.Range(0, n).OrderByDescending(i => scores[i]).ThenBy(i => i).ToList();
        var soup = new List<int> { ranked[0] };
        double current = scores[ranked[0]];
        search.Say($"soup starts with '{context.Models[ranked[0]].Name}' (dev {current:F4})");
        foreach (var candidate in ranked.Skip(1))
        {
            var trial = soup.Append(candidate).ToList();
            var point = Uniform(trial, n);
            double s = await search.ScoreRecipeAsync(search.Linear(point), point, $"soup of {Names(context, trial)}", cancellationToken).ConfigureAwait(false);
            // "Does not drop": an equal score joins (MoCo's >=).
            if (s >= current)
            {
                soup = trial; current = s;
                search.Say($"'{context.Models[candidate].Name}' joins the soup (dev {s:F4})");
            }
            else search.Say($"'{context.Models[candidate].Name}' left out (dev {s:F4} < {current:F4})");
        }
        search.Say($"final soup: {Names(context, soup)}, dev {current:F4}");
        var best = Uniform(soup, n);
        return await search.FinishAsync(search.Linear(best,
            [$"consort {Name}: soup of {Names(context, soup)}", $"dev score {current:F4} on {search.Examples.Count} examples, seed {context.Seed}"]), cancellationToken).ConfigureAwait(false);
    }

    private static double[] Uniform(IReadOnlyList<int> members, int n)
    {
        var w = new double[n];
        foreach (var m in members) w[m] = 1.0 / members.Count;
        return w;
    }

    private static string Names(MethodContext context, IEnumerable<int> members) => "{" + string.Join(", ", members.Select(i => context.Models[i].Name)) + "}";
}
