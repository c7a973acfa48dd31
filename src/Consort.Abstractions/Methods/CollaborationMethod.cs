using System.Reflection;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;

namespace Consort.Methods;

/// <summary>How much of a model a collaboration method reaches.</summary>
public enum CollaborationLevel
{
    /// <summary>Pick or switch models per query or span (routers, cascades).</summary>
    Api,
    /// <summary>Models exchange text (voting, debate, mixture-of-agents).</summary>
    Text,
    /// <summary>Next-token distributions are combined while decoding.</summary>
    Logit,
    /// <summary>Parameters are combined (merging).</summary>
    Weight,
}

/// <summary>
/// Declares a collaboration method: its config name, level, description, MoCo's names, the paper it follows,
/// and what its members must offer. The registry reads it; <c>consort methods</c> and the docs render from it.
/// </summary>
[AttributeUsage(AttributeTargets.Class, Inherited = false)]
public sealed class CollaborationMethodAttribute(string name, CollaborationLevel level, string description) : Attribute
{
    /// <summary>Config name, e.g. "cascade".</summary>
    public string Name { get; } = name;
    /// <summary>Level of access.</summary>
    public CollaborationLevel Level { get; } = level;
    /// <summary>One-line description.</summary>
    public string Description { get; } = description;
    /// <summary>Other accepted names (MoCo's, e.g. "api_cascade").</summary>
    public string[] Aliases { get; init; } = [];
    /// <summary>The paper or project the method follows (title and link).</summary>
    public string? Reference { get; init; }
    /// <summary>Access every member must offer (a method may refine it per member).</summary>
    public ModelAccess Requires { get; init; } = ModelAccess.Text;
    /// <summary>Whether members must share one vocabulary (token-level methods).</summary>
    public bool SharedVocabulary { get; init; }
    /// <summary>Fewest members.</summary>
    public int MinModels { get; init; } = 1;
    /// <summary>Most members (0 = any number).</summary>
    public int MaxModels { get; init; }
}

/// <summary>What the registry and the CLI know about a method, read from its <see cref="CollaborationMethodAttribute"/>.</summary>
public sealed record MethodMetadata(string Name, CollaborationLevel Level, string Description, IReadOnlyList<string> Aliases, string? Reference,
    ModelAccess Requires, bool SharedVocabulary, int MinModels, int MaxModels)
{
    /// <summary>Reads a method class's attribute.</summary>
    public static MethodMetadata Of(Type methodType)
    {
        var a = methodType.GetCustomAttribute<CollaborationMethodAttribute>()
            ?? throw new InvalidOperationException($"{methodType.Name} has no [CollaborationMethod] attribute");
        return new MethodMetadata(a.Name, a.Level, a.Description, a.Aliases, a.Reference, a.Requires, a.SharedVocabulary,
            a.MinModels, a.MaxModels <= 0 ? int.MaxValue : a.MaxModels);
    }

    /// <summary>The member count in words ("2+", "1", "2-3").</summary>
    public string ModelCountText => MaxModels == int.MaxValue ? $"{MinModels}+" : MinModels == MaxModels ? $"{MinModels}" : $"{MinModels}-{MaxModels}";
}

/// <summary>Dev-split examples a method may fit itself on (thresholds, weights, routers).</summary>
public interface IFitData
{
    /// <summary>The examples.</summary>
    IReadOnlyList<FitExample> Examples { get; }
}

/// <summary>One dev example: the prompt the task would send, the gold answer and a scorer.</summary>
/// <param name="Id">Item id.</param>
/// <param name="Messages">Prompt messages.</param>
/// <param name="Gold">Gold answer text.</param>
/// <param name="Score">Scores a model output in [0, 1].</param>
/// <param name="NormalizeAnswer">Extracts the normalized final answer from an output (for voting).</param>
public sealed record FitExample(string Id, IReadOnlyList<ChatMessage> Messages, string Gold,
    Func<string, double> Score, Func<string, string> NormalizeAnswer)
{
    /// <summary>The generation options the task evaluates with (max tokens, stop strings, temperature): fit on outputs
    /// made the way test outputs will be made.</summary>
    public ChatOptions? Options { get; init; }
    /// <summary>The item's group (e.g. its domain), for stratified subsets.</summary>
    public string? Group { get; init; }
}

/// <summary>Subsets of dev data.</summary>
public static class FitDataExtensions
{
    /// <summary>
    /// A seeded random sample of <paramref name="count"/> examples, stratified by <see cref="FitExample.Group"/> when
    /// groups are present (each group gets its share, rounded so the total is exact), in dev order. All examples when
    /// <paramref name="count"/> covers them.
    /// </summary>
    public static IReadOnlyList<FitExample> Sample(this IFitData data, int count, int seed)
    {
        var all = data.Examples;
        if (count >= all.Count) return all;
        if (count <= 0) return [];
        var rng = new Random(seed);
        var groups = all.Select((e, i) => (e, i)).GroupBy(x => x.e.Group ?? "").Select(g => g.ToList()).ToList();
        var picked = new List<(FitExample e, int i)>(count);
        // Largest-remainder allocation of the sample over groups.
        var quotas = groups.Select(g => (double)g.Count * count / all.Count).ToArray();
        var take = quotas.Select(q => (int)Math.Floor(q)).ToArray();
        int left = count - take.Sum();
        foreach (var gi in Enumerable.Range(0, groups.Count).OrderByDescending(g => quotas[g] - take[g]).ThenBy(g => g).Take(left)) take[gi]++;
        for (int g = 0; g < groups.Count; g++)
        {
            var members = groups[g];
            for (int k = 0; k < take[g]; k++)
            {
                int j = k + rng.Next(members.Count - k);
                (members[k], members[j]) = (members[j], members[k]);
                picked.Add(members[k]);
            }
        }
        return picked.OrderBy(x => x.i).Select(x => x.e).ToList();
    }
}

/// <summary>
/// What a method sees when a config is validated (before any model loads): its members' descriptors, whether dev
/// data exists, and where relative paths start. Errors made here name the run, the method and the key.
/// </summary>
public sealed class MethodPlan
{
    /// <summary>Name of the resulting model (the run or collaboration name).</summary>
    public required string Name { get; init; }
    /// <summary>The method.</summary>
    public required MethodMetadata Method { get; init; }
    /// <summary>What each member offers, in config order.</summary>
    public required IReadOnlyList<ModelDescriptor> Members { get; init; }
    /// <summary>True when the run has a dev split to fit on.</summary>
    public bool HasDev { get; init; }
    /// <summary>Folder relative paths in hyperparameters resolve against.</summary>
    public string BaseDirectory { get; init; } = Environment.CurrentDirectory;
    /// <summary>Describes further models a method names (e.g. a merge's base model), without loading them.</summary>
    public IModelLoader? Loader { get; init; }
    /// <summary>Host services (embeddings, trainers, model references) a method may check its options against.</summary>
    public IServiceProvider? Services { get; init; }

    /// <summary>A host service, or null.</summary>
    public T? GetService<T>() where T : class => Services?.GetService(typeof(T)) as T;

    /// <summary>What the host calls a collaboration in messages: "run" (<c>consort run</c>) or "collaboration" (<c>consort serve</c>).</summary>
    public string Unit { get; init; } = "run";

    /// <summary>The message prefix: run (or collaboration) and method.</summary>
    public string Where => $"{Unit} '{Limits.ForMessage(Name)}' (method {Method.Name})";

    /// <summary>An error about one hyperparameter.</summary>
    public ConfigException Error(string key, string problem) => new($"{Where}: hyperparameter '{key}' {problem}");

    /// <summary>An error about the run.</summary>
    public ConfigException Error(string problem) => new($"{Where}: {problem}");

    /// <summary>The smallest known context size of the members (0 when none is known).</summary>
    public int MinContextSize => Members.Where(m => m.ContextSize > 0).Select(m => m.ContextSize).DefaultIfEmpty(0).Min();
}

/// <summary>Everything a method gets to build a collaboration (after validation).</summary>
public sealed class MethodContext
{
    /// <summary>Name for the resulting model.</summary>
    public required string Name { get; init; }
    /// <summary>The member models, in config order.</summary>
    public required IReadOnlyList<ConsortModel> Models { get; init; }
    /// <summary>The bound, validated options (the method's own options type).</summary>
    public required MethodOptions Options { get; init; }
    /// <summary>What the result offers, as the method described it at validation; null when built without a plan.</summary>
    public ModelDescriptor? Descriptor { get; init; }
    /// <summary>Dev examples for fitting, when the run has a task with a dev split.</summary>
    public IFitData? Dev { get; init; }
    /// <summary>Seed for anything random.</summary>
    public int Seed { get; init; } = 42;
    /// <summary>Bound on concurrent inner calls.</summary>
    public int MaxConcurrency { get; init; } = 4;
    /// <summary>Progress and fit messages.</summary>
    public Action<string>? Log { get; init; }
    /// <summary>Folder of the config file, for relative paths in hyperparameters.</summary>
    public string? BaseDirectory { get; init; }
    /// <summary>Loads further models (merged weights, candidates of a search) through the host's providers.</summary>
    public IModelLoader? Loader { get; init; }
    /// <summary>Host services (embedding generators, trainers) a method may ask for.</summary>
    public IServiceProvider? Services { get; init; }
    /// <summary>The task's answer extractor, for calls that carry none (server requests, fitting).</summary>
    public AnswerExtractor Answers { get; init; } = AnswerExtractor.Generic;

    /// <summary>A host service, or null.</summary>
    public T? GetService<T>() where T : class => Services?.GetService(typeof(T)) as T;
}

/// <summary>
/// A collaboration method: declares its options and needs, validates a config before any work, says what its
/// result offers, and builds a model out of member models. Derive from <see cref="CollaborationMethod{TOptions}"/>.
/// </summary>
public interface ICollaborationMethod
{
    /// <summary>Name, level, aliases, needs.</summary>
    MethodMetadata Metadata { get; }
    /// <summary>The options class.</summary>
    Type OptionsType { get; }
    /// <summary>The hyperparameters, with defaults (the method's own first, then the common generation settings).</summary>
    IReadOnlyList<OptionInfo> Options { get; }
    /// <summary>Binds and checks the config's hyperparameters.</summary>
    /// <exception cref="ConfigException">An unknown key or a bad value.</exception>
    MethodOptions Bind(JsonObject? hyperparameters, string where);
    /// <summary>Checks the members and options against each other before any model loads, and says what the result offers.</summary>
    /// <exception cref="ConfigException">What does not fit, naming the run, the method, the model or key.</exception>
    ModelDescriptor Plan(MethodPlan plan, MethodOptions options);
    /// <summary>Builds the collaboration. May fit on <see cref="MethodContext.Dev"/>.</summary>
    Task<ConsortModel> CreateAsync(MethodContext context, CancellationToken cancellationToken = default);
}

/// <summary>
/// Base of every method: metadata from <see cref="CollaborationMethodAttribute"/>, hyperparameters from
/// <typeparamref name="TOptions"/> (defaults written once, in the options class), member checks (count, access,
/// shared vocabulary) done here, so a method only adds what is its own.
/// </summary>
/// <typeparam name="TOptions">The options class.</typeparam>
public abstract class CollaborationMethod<TOptions> : ICollaborationMethod where TOptions : MethodOptions, new()
{
    /// <summary>Reads the metadata.</summary>
    protected CollaborationMethod() { Metadata = MethodMetadata.Of(GetType()); }

    /// <inheritdoc />
    public MethodMetadata Metadata { get; }
    /// <summary>Config name.</summary>
    public string Name => Metadata.Name;
    /// <inheritdoc />
    public Type OptionsType => typeof(TOptions);
    /// <inheritdoc />
    public IReadOnlyList<OptionInfo> Options => OptionBinder.Describe(typeof(TOptions));

    /// <inheritdoc />
    public MethodOptions Bind(JsonObject? hyperparameters, string where) => OptionBinder.Bind(typeof(TOptions), hyperparameters, where);

    /// <inheritdoc />
    public ModelDescriptor Plan(MethodPlan plan, MethodOptions options)
    {
        var o = (TOptions)options;
        CheckMembers(plan, o);
        Validate(o, plan);
        return Describe(o, plan);
    }

    /// <inheritdoc />
    public Task<ConsortModel> CreateAsync(MethodContext context, CancellationToken cancellationToken = default) =>
        CreateAsync(context, (TOptions)context.Options, cancellationToken);

    /// <summary>Access member <paramref name="index"/> of <paramref name="count"/> must offer (default: the attribute's).</summary>
    protected virtual ModelAccess RequiresOf(int index, int count, TOptions options) => Metadata.Requires;

    /// <summary>Checks that the options fit the members (lengths of per-member lists, names of members, files).</summary>
    protected virtual void Validate(TOptions options, MethodPlan plan) { }

    /// <summary>What the result offers (default: chat text, the members' smallest context).</summary>
    protected virtual ModelDescriptor Describe(TOptions options, MethodPlan plan) =>
        new() { Name = plan.Name, Access = ModelAccess.Text, ContextSize = plan.MinContextSize };

    /// <summary>Builds the collaboration.</summary>
    protected abstract Task<ConsortModel> CreateAsync(MethodContext context, TOptions options, CancellationToken cancellationToken);

    /// <summary>The descriptor validation produced, or the default one when built without a plan (tests).</summary>
    protected ModelDescriptor DescriptorOf(MethodContext context, TOptions options) =>
        context.Descriptor ?? Describe(options, new MethodPlan { Name = context.Name, Method = Metadata, Members = context.Models.Select(m => m.Descriptor).ToList(), HasDev = context.Dev is not null, BaseDirectory = context.BaseDirectory ?? Environment.CurrentDirectory });

    private void CheckMembers(MethodPlan plan, TOptions options)
    {
        var members = plan.Members;
        var m = Metadata;
        if (members.Count < m.MinModels || members.Count > m.MaxModels)
        {
            string range = m.MaxModels == int.MaxValue ? $"at least {m.MinModels}" : m.MinModels == m.MaxModels ? $"exactly {m.MinModels}" : $"{m.MinModels} to {m.MaxModels}";
            throw plan.Error($"needs {range} model(s), got {members.Count}");
        }
        for (int i = 0; i < members.Count; i++)
        {
            var need = RequiresOf(i, members.Count, options);
            if (!members[i].Access.Satisfies(need))
                throw plan.Error($"needs {need.Describe()} from model '{members[i].Name}', which offers only {members[i].AccessDescription}");
        }
        if (m.SharedVocabulary) CheckSharedVocabulary(plan);
    }

    /// <summary>Throws when the members' vocabularies differ, naming both models and their vocabularies.</summary>
    protected static void CheckSharedVocabulary(MethodPlan plan) => SharedVocabulary.Require(plan.Members, plan.Where);
}
