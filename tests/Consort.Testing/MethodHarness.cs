using System.Text.Json.Nodes;
using Consort.Methods;

namespace Consort.Testing;

/// <summary>
/// Builds a method the way a run does (bind and check the hyperparameters, plan against the members' descriptors,
/// create), for tests that give models directly instead of a config.
/// </summary>
public static class MethodHarness
{
    /// <summary>Binds, plans and creates <paramref name="method"/> over <paramref name="models"/>.</summary>
    /// <param name="method">The method.</param>
    /// <param name="models">Members.</param>
    /// <param name="hyperparameters">JSON object text, or null.</param>
    /// <param name="dev">Dev data, if any.</param>
    /// <param name="name">Result name.</param>
    /// <param name="loader">Model loader for methods that load models.</param>
    /// <param name="seed">Seed.</param>
    /// <param name="concurrency">Inner-call bound.</param>
    /// <param name="answers">The task's answer extractor.</param>
    /// <param name="baseDirectory">Folder for relative paths.</param>
    /// <param name="log">Receives the method's messages.</param>
    /// <param name="services">Host services (embeddings, trainers).</param>
    /// <param name="cancellationToken">Cancels the creation.</param>
    public static Task<ConsortModel> CreateAsync(ICollaborationMethod method, IReadOnlyList<ConsortModel> models, string? hyperparameters = null,
        IFitData? dev = null, string name = "collab", IModelLoader? loader = null, int seed = 42, int concurrency = 4,
        AnswerExtractor? answers = null, string? baseDirectory = null, Action<string>? log = null, IServiceProvider? services = null,
        CancellationToken cancellationToken = default)
    {
        var (options, descriptor) = Plan(method, models.Select(m => m.Descriptor).ToList(), hyperparameters, dev is not null, name, loader, baseDirectory, services);
        return method.CreateAsync(new MethodContext
        {
            Name = name, Models = models, Options = options, Descriptor = descriptor, Dev = dev, Seed = seed, MaxConcurrency = concurrency,
            Loader = loader, Answers = answers ?? AnswerExtractor.Generic, BaseDirectory = baseDirectory, Log = log, Services = services,
        }, cancellationToken);
    }

    /// <summary>Binds and plans only (what validation before work does), returning the options and the result's descriptor.</summary>
    public static (MethodOptions Options, ModelDescriptor Descriptor) Plan(ICollaborationMethod method, IReadOnlyList<ModelDescriptor> members,
        string? hyperparameters = null, bool hasDev = false, string name = "collab", IModelLoader? loader = null, string? baseDirectory = null,
        IServiceProvider? services = null)
    {
        var json = hyperparameters is null ? null : JsonNode.Parse(hyperparameters)!.AsObject();
        var options = method.Bind(json, $"run '{name}' (method {method.Metadata.Name})");
        var plan = new MethodPlan
        {
            Name = name, Method = method.Metadata, Members = members, HasDev = hasDev, Loader = loader, Services = services,
            BaseDirectory = baseDirectory ?? Environment.CurrentDirectory,
        };
        return (options, method.Plan(plan, options));
    }
}

/// <summary>Dev data built in a test.</summary>
public sealed class TestFitData(IEnumerable<FitExample> examples) : IFitData
{
    /// <inheritdoc />
    public IReadOnlyList<FitExample> Examples { get; } = examples.ToList();

    /// <summary>Dev examples whose prompts are <paramref name="prompts"/> (gold empty, score 0).</summary>
    public static TestFitData FromPrompts(IEnumerable<string> prompts) =>
        new(prompts.Select((p, i) => new FitExample($"d{i}", [new Microsoft.Extensions.AI.ChatMessage(Microsoft.Extensions.AI.ChatRole.User, p)], "", _ => 0, s => s)));

    /// <summary>Dev examples of (prompt, gold) scored by exact match of the trimmed first line.</summary>
    public static TestFitData FromPairs(IEnumerable<(string Prompt, string Gold)> pairs, Microsoft.Extensions.AI.ChatOptions? options = null) =>
        new(pairs.Select((p, i) => new FitExample($"d{i}", [new Microsoft.Extensions.AI.ChatMessage(Microsoft.Extensions.AI.ChatRole.User, p.Prompt)], p.Gold,
            o => AnswerExtractor.GenericNormalize(o) == AnswerExtractor.GenericNormalize(p.Gold) ? 1 : 0, AnswerExtractor.GenericNormalize) { Options = options }));
}
