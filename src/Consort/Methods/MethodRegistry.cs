namespace Consort.Methods;

/// <summary>
/// All collaboration methods, discovered from this assembly (one file per method, each a
/// <see cref="CollaborationMethod{TOptions}"/> with a <see cref="CollaborationMethodAttribute"/>). Names and MoCo's
/// aliases (e.g. "api_cascade", "logit_logit_fusion") come from the attributes, so MoCo configs run unchanged.
/// </summary>
public static class MethodRegistry
{
    private static readonly Lazy<(IReadOnlyDictionary<string, ICollaborationMethod> ByName, IReadOnlyDictionary<string, string> Aliases)> All = new(() =>
    {
        var methods = typeof(MethodRegistry).Assembly.GetTypes()
            .Where(t => typeof(ICollaborationMethod).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false }
                        && t.GetConstructor(Type.EmptyTypes) is not null)
            .Select(t => (ICollaborationMethod)Activator.CreateInstance(t)!)
            .ToList();
        var byName = new Dictionary<string, ICollaborationMethod>(StringComparer.OrdinalIgnoreCase);
        var aliases = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var m in methods)
        {
            if (!byName.TryAdd(m.Metadata.Name, m)) throw new InvalidOperationException($"two methods are named '{m.Metadata.Name}'");
        }
        foreach (var m in methods)
            foreach (var a in m.Metadata.Aliases)
            {
                if (byName.ContainsKey(a) || !aliases.TryAdd(a, m.Metadata.Name))
                    throw new InvalidOperationException($"method alias '{a}' of '{m.Metadata.Name}' is taken");
            }
        return (byName, aliases);
    });

    /// <summary>Alias (MoCo's name) to method name.</summary>
    public static IReadOnlyDictionary<string, string> Aliases => All.Value.Aliases;

    /// <summary>Every registered method, by level then name.</summary>
    public static IReadOnlyList<ICollaborationMethod> Methods =>
        All.Value.ByName.Values.OrderBy(m => m.Metadata.Level).ThenBy(m => m.Metadata.Name, StringComparer.Ordinal).ToList();

    /// <summary>Finds a method by name or alias, or null.</summary>
    public static ICollaborationMethod? Find(string name)
    {
        if (All.Value.ByName.TryGetValue(name, out var m)) return m;
        return All.Value.Aliases.TryGetValue(name, out var real) && All.Value.ByName.TryGetValue(real, out m) ? m : null;
    }

    /// <summary>Finds a method or throws a <see cref="ConfigException"/> listing the valid names.</summary>
    public static ICollaborationMethod Get(string name) =>
        Find(name) ?? throw new ConfigException($"unknown method '{Limits.ForMessage(name)}'; valid methods: {string.Join(", ", All.Value.ByName.Keys.Order(StringComparer.Ordinal))}");
}
