using System.Text.Json.Nodes;
using Consort.Config;

namespace Consort.Methods;

/// <summary>
/// Reads a model reference written in a hyperparameter (a GGUF path relative to the config, <c>zoo:NAME</c>,
/// <c>hf:...</c>, or an endpoint object) the way the config's <c>models</c> are read; offered by the host so that a
/// method can name a model that is not a member (e.g. switch_generation's selector) and check it before any work.
/// </summary>
public interface IModelReferences
{
    /// <summary>The spec of <paramref name="reference"/>.</summary>
    /// <exception cref="ConfigException">It names no model.</exception>
    ModelSpec Parse(JsonNode reference, string baseDirectory, string where);
}

/// <summary>Finding the model a hyperparameter names: a member by name, or a further model through the host.</summary>
public static class ModelChoice
{
    /// <summary>The member index named <paramref name="name"/>, or null.</summary>
    public static int? MemberIndex(IReadOnlyList<ModelDescriptor> members, string name)
    {
        for (int i = 0; i < members.Count; i++) if (members[i].Name == name) return i;
        return null;
    }

    /// <summary>
    /// Checks before work that <paramref name="value"/> is a member's name or a model the host can load, and returns the
    /// further model's spec (null for a member).
    /// </summary>
    public static ModelSpec? Check(MethodPlan plan, string key, string value)
    {
        if (MemberIndex(plan.Members, value) is not null) return null;
        var references = plan.GetService<IModelReferences>();
        if (references is null || plan.Loader is null)
            throw plan.Error(key, $"names '{Limits.ForMessage(value)}', which is not a member; members: {string.Join(", ", plan.Members.Select(m => m.Name))}");
        ModelSpec spec;
        try { spec = references.Parse(JsonValue.Create(value), plan.BaseDirectory, $"{plan.Where}: hyperparameter '{key}'"); }
        catch (ConfigException e)
        {
            throw plan.Error(key, $"names '{Limits.ForMessage(value)}', which is neither a member ({string.Join(", ", plan.Members.Select(m => m.Name))}) nor a model: {e.Message}");
        }
        plan.Loader.Describe(spec); // a missing file or a bad model fails here, before any work
        return spec;
    }

    /// <summary>The model <paramref name="value"/> names at build time: a member (not owned) or a further model loaded through the host (owned).</summary>
    public static async Task<(ConsortModel Model, bool Owned)> ResolveAsync(MethodContext context, string key, string value, string method, CancellationToken cancellationToken)
    {
        for (int i = 0; i < context.Models.Count; i++) if (context.Models[i].Name == value) return (context.Models[i], false);
        var references = context.GetService<IModelReferences>() ?? throw new ConfigException($"method '{method}': '{key}' names '{value}', which is not a member, and this host loads no other models");
        var loader = context.Loader ?? throw new ConfigException($"method '{method}': '{key}' names '{value}', which is not a member, and this host loads no other models");
        var spec = references.Parse(JsonValue.Create(value), context.BaseDirectory ?? Environment.CurrentDirectory, $"method '{method}': hyperparameter '{key}'");
        return (await loader.LoadAsync(spec, cancellationToken).ConfigureAwait(false), true);
    }
}
