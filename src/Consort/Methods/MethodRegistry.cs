using System.Reflection;

namespace Consort.Methods;

/// <summary>
/// All collaboration methods, discovered from this assembly (one file per method). Also knows MoCo's
/// method names (e.g. "api_cascade", "logit_logit_fusion") so MoCo configs run unchanged.
/// </summary>
public static class MethodRegistry
{
    private static readonly Lazy<IReadOnlyDictionary<string, ICollaborationMethod>> All = new(() =>
        typeof(MethodRegistry).Assembly.GetTypes()
            .Where(t => typeof(ICollaborationMethod).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false }
                        && t.GetConstructor(Type.EmptyTypes) is not null)
            .Select(t => (ICollaborationMethod)Activator.CreateInstance(t)!)
            .ToDictionary(m => m.Name, StringComparer.OrdinalIgnoreCase));

    /// <summary>MoCo's names for methods Consort implements under its own names.</summary>
    public static readonly IReadOnlyDictionary<string, string> Aliases = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase)
    {
        ["api_cascade"] = "cascade",
        ["text_majority_vote"] = "majority_vote",
        ["logit_logit_fusion"] = "logit_fusion",
        ["single"] = "single_model",
        ["api_prompt_routing"] = "likelihood_router",
    };

    /// <summary>Hyperparameters every method accepts: generation settings (MoCo's names included).</summary>
    public static readonly IReadOnlyList<HyperparameterSpec> Common =
    [
        new("max_tokens", "int", "256", "Most tokens a model generates per call."),
        new("max_response_length", "int", "256", "MoCo's name for max_tokens."),
        new("temperature", "float", "0", "Sampling temperature of member calls (0 = greedy)."),
        new("top_p", "float", "1", "Nucleus sampling threshold of member calls."),
        new("top_k", "int", "0", "Top-k sampling of member calls (0 = off)."),
        new("batch_size", "int", "(ignored)", "MoCo's batching knob; Consort batches and bounds concurrency itself."),
    ];

    /// <summary>Every registered method, by name.</summary>
    public static IReadOnlyCollection<ICollaborationMethod> Methods => All.Value.Values.OrderBy(m => m.Level).ThenBy(m => m.Name).ToList();

    /// <summary>Finds a method by name or MoCo alias, or null.</summary>
    public static ICollaborationMethod? Find(string name)
    {
        if (All.Value.TryGetValue(name, out var m)) return m;
        return Aliases.TryGetValue(name, out var real) && All.Value.TryGetValue(real, out m) ? m : null;
    }

    /// <summary>Finds a method or throws a <see cref="ConfigException"/> listing the valid names.</summary>
    public static ICollaborationMethod Get(string name) =>
        Find(name) ?? throw new ConfigException($"unknown method '{name}'; valid methods: {string.Join(", ", All.Value.Keys.Order())}");

    /// <summary>The full list of hyperparameters a method accepts (its own plus the common ones).</summary>
    public static IReadOnlyList<HyperparameterSpec> SpecsOf(ICollaborationMethod method) =>
        method.Hyperparameters.Concat(Common.Where(c => method.Hyperparameters.All(h => h.Name != c.Name))).ToList();

    /// <summary>
    /// Checks that the members fit the method before any work starts: model count, capabilities,
    /// shared vocabulary and hyperparameter names. Messages name the method, the model and what is missing.
    /// </summary>
    public static void Validate(ICollaborationMethod method, IReadOnlyList<ModelDescriptor> members, Hyperparameters hyperparameters)
    {
        if (members.Count < method.MinModels || members.Count > method.MaxModels)
        {
            string range = method.MaxModels == int.MaxValue ? $"at least {method.MinModels}" :
                method.MinModels == method.MaxModels ? $"exactly {method.MinModels}" : $"{method.MinModels} to {method.MaxModels}";
            throw new ConfigException($"method '{method.Name}' needs {range} model(s), got {members.Count}");
        }
        for (int i = 0; i < members.Count; i++)
        {
            var need = method is IMemberRequirements per ? per.RequiresOf(i, members.Count) : method.Requires;
            if (!members[i].Access.Satisfies(need))
                throw new ConfigException($"method '{method.Name}' needs {need.Describe()} from model '{members[i].Name}', " +
                                          $"which offers only {members[i].AccessDescription}");
        }
        if (method.RequiresSharedVocabulary)
        {
            var first = members[0];
            foreach (var m in members.Skip(1))
            {
                if (first.Vocabulary is null || m.Vocabulary is null || first.Vocabulary.Hash != m.Vocabulary.Hash)
                    throw new ConfigException($"method '{method.Name}' combines next-token distributions, so every model must share one vocabulary: " +
                                              $"'{first.Name}' has {first.Vocabulary?.ToString() ?? "no visible vocabulary"} but '{m.Name}' has {m.Vocabulary?.ToString() ?? "no visible vocabulary"}");
            }
        }
        hyperparameters.Validate(SpecsOf(method));
    }
}

/// <summary>For methods whose members need different access (e.g. a cascade's last model needs no logprobs).</summary>
public interface IMemberRequirements
{
    /// <summary>Access member <paramref name="index"/> of <paramref name="count"/> must offer.</summary>
    ModelAccess RequiresOf(int index, int count);
}
