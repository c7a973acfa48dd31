using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;

namespace Consort;

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

/// <summary>One hyperparameter a method accepts.</summary>
/// <param name="Name">Key in the config's "hyperparameters" object.</param>
/// <param name="Type">"int", "float", "bool", "string", "float[]", "object".</param>
/// <param name="Default">Default value as JSON text, or null when required or computed.</param>
/// <param name="Description">What it does.</param>
public sealed record HyperparameterSpec(string Name, string Type, string? Default, string Description);

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
    Func<string, double> Score, Func<string, string> NormalizeAnswer);

/// <summary>Everything a method gets to build a collaboration.</summary>
public sealed class MethodContext
{
    /// <summary>Name for the resulting model.</summary>
    public required string Name { get; init; }
    /// <summary>The member models, in config order.</summary>
    public required IReadOnlyList<ConsortModel> Models { get; init; }
    /// <summary>Validated hyperparameters.</summary>
    public required Hyperparameters Hyperparameters { get; init; }
    /// <summary>Dev examples for fitting, when the run has a task.</summary>
    public IFitData? Dev { get; init; }
    /// <summary>Seed for anything random.</summary>
    public int Seed { get; init; } = 42;
    /// <summary>Bound on concurrent inner calls.</summary>
    public int MaxConcurrency { get; init; } = 4;
    /// <summary>Progress and fit messages.</summary>
    public Action<string>? Log { get; init; }
    /// <summary>Folder of the config file, for relative paths in hyperparameters.</summary>
    public string? BaseDirectory { get; init; }
}

/// <summary>
/// A collaboration method: states what it needs, validates a config, and builds a model out of member models.
/// Register implementations in the method registry; one file per method.
/// </summary>
public interface ICollaborationMethod
{
    /// <summary>Config name, e.g. "logit_fusion".</summary>
    string Name { get; }
    /// <summary>Level of access the method works at.</summary>
    CollaborationLevel Level { get; }
    /// <summary>One-line description.</summary>
    string Description { get; }
    /// <summary>Access every member must offer.</summary>
    ModelAccess Requires { get; }
    /// <summary>Whether members must share one vocabulary (token-level methods).</summary>
    bool RequiresSharedVocabulary { get; }
    /// <summary>Fewest members.</summary>
    int MinModels { get; }
    /// <summary>Most members (int.MaxValue for any).</summary>
    int MaxModels { get; }
    /// <summary>Accepted hyperparameters.</summary>
    IReadOnlyList<HyperparameterSpec> Hyperparameters { get; }
    /// <summary>Builds the collaboration. May fit on <see cref="MethodContext.Dev"/>.</summary>
    Task<ConsortModel> CreateAsync(MethodContext context, CancellationToken cancellationToken = default);
}

/// <summary>Typed, validated access to a method's hyperparameters.</summary>
public sealed class Hyperparameters
{
    private readonly JsonObject _values;
    private readonly string _method;

    /// <summary>Wraps values for <paramref name="method"/>.</summary>
    public Hyperparameters(string method, JsonObject? values)
    {
        _method = method; _values = values ?? new JsonObject();
    }

    /// <summary>Raw values.</summary>
    public JsonObject Values => _values;

    /// <summary>True when the key was given.</summary>
    public bool Has(string key) => _values.ContainsKey(key) && _values[key] is not null;

    /// <summary>Reads a value, or <paramref name="fallback"/> when absent.</summary>
    public T Get<T>(string key, T fallback)
    {
        if (!_values.TryGetPropertyValue(key, out var node) || node is null) return fallback;
        try
        {
            return node.Deserialize<T>() ?? fallback;
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            throw new ConfigException($"method '{_method}': hyperparameter '{key}' should be {typeof(T).Name}, got {node.ToJsonString()}", e);
        }
    }

    /// <summary>Checks every key against <paramref name="specs"/>; unknown keys are an error naming the valid ones.</summary>
    public void Validate(IReadOnlyList<HyperparameterSpec> specs)
    {
        foreach (var (key, _) in _values)
        {
            if (!specs.Any(s => s.Name == key))
                throw new ConfigException($"method '{_method}': unknown hyperparameter '{key}'; valid: {(specs.Count == 0 ? "(none)" : string.Join(", ", specs.Select(s => s.Name)))}");
        }
    }
}
