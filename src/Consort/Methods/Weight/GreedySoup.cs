using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Consort.Config;
using Consort.Methods.Weight.Search;
using Consort.Weights.Engine;

namespace Consort.Methods.Weight;

/// <summary>Options of <see cref="GreedySoupMethod"/>.</summary>
public sealed class GreedySoupOptions : MethodOptions
{
    /// <summary>Dev examples each candidate is scored on.</summary>
    [Option("Dev examples every member and candidate soup answers (a seeded, stratified sample).", Min = 1, Max = 100_000)]
    public int DevSamples { get; set; } = 40;
}

/// <summary>One step of a greedy soup: the member tried, the soup's dev score with it, and whether it stayed.</summary>
/// <param name="Member">Index of the member tried.</param>
/// <param name="Score">Dev score of the soup with it.</param>
/// <param name="Kept">Whether the member stayed in the soup.</param>
public sealed record SoupStep(int Member, double Score, bool Kept);

/// <summary>
/// <c>greedy_soup</c> (Wortsman et al., 2022): rank the members by dev score; start the soup with the best, then try the
/// others in rank order, keeping each one only if the uniform average of the soup's weights with it does not lower the
/// dev score. Each candidate soup is merged (linear, uniform) into a cached GGUF and loaded through the host's loader;
/// its mergekit recipe is written beside it.
/// </summary>
[CollaborationMethod("greedy_soup", CollaborationLevel.Weight, "Add members (best dev score first) to a uniform weight average only while the dev score does not drop.",
    Aliases = ["weight_greedy_soup"], Reference = "Wortsman et al., Model soups (ICML 2022), https://arxiv.org/abs/2203.05482",
    Requires = ModelAccess.Weights, SharedVocabulary = true, MinModels = 2)]
public sealed class GreedySoupMethod : CollaborationMethod<GreedySoupOptions>
{
    /// <inheritdoc />
    protected override void Validate(GreedySoupOptions options, MethodPlan plan)
    {
        if (!plan.HasDev) throw plan.Error("needs a task with a dev split to score the soups on");
        CheckSameShape(plan);
    }

    /// <summary>Weight methods average tensors name by name: members must have one architecture and size.</summary>
    internal static void CheckSameShape(MethodPlan plan)
    {
        var first = plan.Members[0];
        foreach (var m in plan.Members.Skip(1))
            if (m.Architecture != first.Architecture || m.Parameters != first.Parameters)
                throw plan.Error($"averages weights, so every model must have one architecture and size: '{first.Name}' is {first.Architecture ?? "?"} with {first.Parameters?.ToString() ?? "?"} parameters, '{m.Name}' is {m.Architecture ?? "?"} with {m.Parameters?.ToString() ?? "?"}");
    }

    /// <inheritdoc />
    protected override ModelDescriptor Describe(GreedySoupOptions options, MethodPlan plan) => new()
    {
        Name = plan.Name,
        Access = ModelAccess.Text | ModelAccess.FullLogits | ModelAccess.Weights,
        Vocabulary = plan.Members[0].Vocabulary,
        ContextSize = plan.MinContextSize,
        Architecture = plan.Members[0].Architecture,
        Parameters = plan.Members[0].Parameters,
    };

    /// <inheritdoc />
    protected override async Task<ConsortModel> CreateAsync(MethodContext context, GreedySoupOptions options, CancellationToken cancellationToken)
    {
        var loader = context.Loader ?? throw new ConsortException($"method '{Name}' needs a model loader to run the soups (none was given by the host)");
        if (context.Dev is not { Examples.Count: > 0 } dev) throw new ConfigException($"method '{Name}' needs a task with a dev split to score the soups on");
        var models = context.Models;
        var paths = models.Select(m => m.Descriptor.WeightsPath ?? throw new ConfigException($"method '{Name}': model '{m.Name}' has no weights file")).ToList();
        var examples = dev.Sample(options.DevSamples, context.Seed);

        async Task<double> Score(ConsortModel m, CancellationToken ct)
        {
            var s = await CollaborationChatClient.ParallelAsync(examples, context.MaxConcurrency, async (ex, j, token) =>
                ex.Score((await m.Chat.GetResponseAsync(ex.Messages, options.Apply(ex.Options, context.Seed + j), token).ConfigureAwait(false)).Text), ct).ConfigureAwait(false);
            return s.Average();
        }

        var single = new double[models.Count];
        for (int i = 0; i < models.Count; i++)
        {
            single[i] = await Score(models[i], cancellationToken).ConfigureAwait(false);
            context.Log?.Invoke($"{context.Name}: '{models[i].Name}' dev score {single[i]:0.000} on {examples.Count} examples");
        }
        ConsortModel? current = null;
        var steps = await SelectAsync(single, async (soup, ct) =>
        {
            var (candidate, output) = await LoadSoupAsync(context, loader, paths, soup, ct).ConfigureAwait(false);
            double score = await Score(candidate, ct).ConfigureAwait(false);
            context.Log?.Invoke($"{context.Name}: soup of {string.Join(" + ", soup.Select(i => models[i].Name))} dev score {score:0.000} ({output})");
            candidate.Dispose();
            return score;
        }, cancellationToken).ConfigureAwait(false);
        var kept = steps.Where(s => s.Kept).Select(s => s.Member).ToList();
        context.Log?.Invoke($"{context.Name}: greedy soup keeps {string.Join(", ", kept.Select(i => models[i].Name))} (dev score {steps.Where(s => s.Kept).Last().Score:0.000})");
        (current, _) = await LoadSoupAsync(context, loader, paths, kept, cancellationToken).ConfigureAwait(false);
        return new ConsortModel(current.Descriptor with { Name = context.Name }, current.Chat, current.Tokens, models, Name, current);
    }

    /// <summary>
    /// The greedy selection: members in order of <paramref name="singleScores"/> (best first, ties in config order); the
    /// best starts the soup with its own score; each next member is kept when <paramref name="scoreSoup"/> of the soup with
    /// it is at least the soup's score so far.
    /// </summary>
    public static async Task<IReadOnlyList<SoupStep>> SelectAsync(IReadOnlyList<double> singleScores,
        Func<IReadOnlyList<int>, CancellationToken, Task<double>> scoreSoup, CancellationToken cancellationToken = default)
    {
        var order = Enumerable.Range(0, singleScores.Count).OrderByDescending(i => singleScores[i]).ThenBy(i => i).ToList();
        var soup = new List<int> { order[0] };
        double best = singleScores[order[0]];
        var steps = new List<SoupStep> { new(order[0], best, true) };
        foreach (var i in order.Skip(1))
        {
            cancellationToken.ThrowIfCancellationRequested();
            double score = await scoreSoup([.. soup, i], cancellationToken).ConfigureAwait(false);
            bool keep = score >= best;
            if (keep) { soup.Add(i); best = score; }
            steps.Add(new SoupStep(i, score, keep));
        }
        return steps;
    }

    /// <summary>Merges the uniform average of <paramref name="soup"/>'s members into a cached GGUF (recipe beside it) and loads it.</summary>
    private static async Task<(ConsortModel Model, string Path)> LoadSoupAsync(MethodContext context, IModelLoader loader, IReadOnlyList<string> paths,
        IReadOnlyList<int> soup, CancellationToken ct)
    {
        var members = soup.Order().Select(i => paths[i]).ToList();
        var recipe = MergeRecipe.ForCoefficients(members, members.Select(_ => 1.0 / members.Count).ToList(),
            [$"greedy soup of {members.Count} model(s), uniform weights"]);
        string key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(recipe.ToYaml() + string.Concat(members.Select(p =>
        {
            var fi = new FileInfo(p);
            return $"|{fi.Length}:{fi.LastWriteTimeUtc.Ticks}";
        })))))[..24];
        string output = Path.Combine(WeightMergeMethod.CacheFolder, "soup-" + key + ".gguf");
        if (!File.Exists(output))
        {
            var config = recipe.ToMergeConfig($"method 'greedy_soup' ({context.Name})");
            await Task.Run(() => MergeEngine.Run(config, output, ct: ct), ct).ConfigureAwait(false);
        }
        recipe.Save(Path.ChangeExtension(output, ".yml"));
        var model = await loader.LoadAsync(new GgufModelSpec(context.Name, output, output, new JsonObject { ["seed"] = context.Seed }), ct).ConfigureAwait(false);
        return (model, output);
    }
}
