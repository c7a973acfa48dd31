using System.Collections.Concurrent;
using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Consort.Methods;

/// <summary>One hyperparameter of a method, read from its options class.</summary>
/// <param name="Name">Config key.</param>
/// <param name="Aliases">Other accepted keys (MoCo's names).</param>
/// <param name="Type">Type in words: int, float, bool, string, float[], one of a|b, object.</param>
/// <param name="Default">The default as shown to users (JSON text, or words when computed at run time).</param>
/// <param name="Description">What it does.</param>
/// <param name="Min">Smallest allowed value, if bounded.</param>
/// <param name="Max">Largest allowed value, if bounded.</param>
/// <param name="Allowed">Allowed values of a closed set, if any.</param>
/// <param name="Ignored">Accepted for compatibility, without effect.</param>
public sealed record OptionInfo(string Name, IReadOnlyList<string> Aliases, string Type, string Default, string Description,
    double? Min, double? Max, IReadOnlyList<string>? Allowed, bool Ignored, bool MinExclusive = false)
{
    /// <summary>The range in words ("[0, 1]", "≥ 1"), or null when unbounded.</summary>
    public string? RangeText() => (Min, Max) switch
    {
        ({ } lo, { } hi) => $"{(MinExclusive ? "(" : "[")}{Num(lo)}, {Num(hi)}]",
        ({ } lo, null) => $"{(MinExclusive ? ">" : "≥")} {Num(lo)}",
        (null, { } hi) => $"≤ {Num(hi)}",
        _ => null,
    };

    private static string Num(double v) => v.ToString("G", CultureInfo.InvariantCulture);
}

/// <summary>
/// Binds a config's "hyperparameters" object to a method's options class and checks every value: unknown keys,
/// types, ranges and allowed values, each failure one message naming where (run and method), the key, the bad
/// value and what is valid. Runs for every run of a config before any model loads.
/// </summary>
public static class OptionBinder
{
    private sealed record Prop(PropertyInfo Property, OptionAttribute Attr, OptionInfo Info);

    private static readonly ConcurrentDictionary<Type, IReadOnlyList<Prop>> Cache = new();

    /// <summary>The hyperparameters an options type declares (base settings last), with their defaults.</summary>
    public static IReadOnlyList<OptionInfo> Describe(Type optionsType) => Props(optionsType).Select(p => p.Info).ToList();

    /// <summary>Creates <paramref name="optionsType"/> with the values of <paramref name="values"/>, checking each.</summary>
    /// <param name="optionsType">A <see cref="MethodOptions"/> subclass with a public parameterless constructor.</param>
    /// <param name="values">The config's hyperparameters (null = all defaults).</param>
    /// <param name="where">Prefix of messages, e.g. "run 'vote' (method majority_vote)".</param>
    /// <exception cref="ConfigException">An unknown key or a bad value.</exception>
    public static MethodOptions Bind(Type optionsType, JsonObject? values, string where)
    {
        var options = (MethodOptions)(Activator.CreateInstance(optionsType)
            ?? throw new InvalidOperationException($"{optionsType.Name} has no parameterless constructor"));
        if (values is null) return options;
        var props = Props(optionsType);
        var seen = new Dictionary<Prop, string>();
        foreach (var (key, node) in values)
        {
            var prop = props.FirstOrDefault(p => Matches(p, key))
                ?? throw new ConfigException($"{where}: unknown hyperparameter '{Cut(key)}'; valid: {string.Join(", ", props.Where(p => !p.Info.Ignored).Select(p => p.Info.Name))}" +
                                             (Suggest(key, props) is { } s ? $" (did you mean '{s}'?)" : ""));
            if (seen.TryGetValue(prop, out var other))
                throw new ConfigException($"{where}: '{other}' and '{key}' both set hyperparameter '{prop.Info.Name}'; give one");
            seen[prop] = key;
            if (node is null) continue; // null means "the default"
            object? value = Convert(node, prop.Property.PropertyType, prop, key, where);
            Check(value, prop, key, node, where);
            prop.Property.SetValue(options, value);
        }
        return options;
    }

    /// <summary>Typed form of <see cref="Bind(Type, JsonObject?, string)"/>.</summary>
    public static T Bind<T>(JsonObject? values, string where) where T : MethodOptions, new() => (T)Bind(typeof(T), values, where);

    private static bool Matches(Prop p, string key) =>
        string.Equals(p.Info.Name, key, StringComparison.OrdinalIgnoreCase) || p.Info.Aliases.Any(a => string.Equals(a, key, StringComparison.OrdinalIgnoreCase));

    private static IReadOnlyList<Prop> Props(Type t) => Cache.GetOrAdd(t, type =>
    {
        if (!typeof(MethodOptions).IsAssignableFrom(type)) throw new ArgumentException($"{type.Name} is not a MethodOptions type");
        var fresh = Activator.CreateInstance(type);
        var list = new List<Prop>();
        // Own properties first, then the base class's common generation settings.
        for (var level = type; level is not null && level != typeof(object); level = level.BaseType)
        {
            foreach (var p in level.GetProperties(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly))
            {
                if (p.GetCustomAttribute<OptionAttribute>() is not { } a || !p.CanWrite) continue;
                string name = a.Name ?? SnakeCase(p.Name);
                // A method's own option shadows a common one of the same key (llm_blender's top_k is MoCo's candidate count).
                if (level != type && list.Any(x => string.Equals(x.Info.Name, name, StringComparison.OrdinalIgnoreCase))) continue;
                var info = new OptionInfo(name, a.Aliases, TypeText(p.PropertyType), p.GetValue(fresh) is { } v0 ? DefaultText(v0) : a.DefaultText ?? "(none)", a.Description,
                    double.IsNaN(a.Min) ? null : a.Min, double.IsNaN(a.Max) ? null : a.Max, AllowedOf(p.PropertyType, a), a.Ignored, a.MinExclusive);
                list.Add(new Prop(p, a, info));
            }
        }
        var dup = list.SelectMany(p => p.Info.Aliases.Prepend(p.Info.Name)).GroupBy(n => n, StringComparer.OrdinalIgnoreCase).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new InvalidOperationException($"{type.Name}: option key '{dup.Key}' is declared twice");
        return list;
    });

    /// <summary>"DeferralRate" -> "deferral_rate".</summary>
    public static string SnakeCase(string name)
    {
        var sb = new StringBuilder(name.Length + 4);
        for (int i = 0; i < name.Length; i++)
        {
            char c = name[i];
            if (char.IsUpper(c))
            {
                if (i > 0 && (char.IsLower(name[i - 1]) || (i + 1 < name.Length && char.IsLower(name[i + 1])) || char.IsDigit(name[i - 1]))) sb.Append('_');
                sb.Append(char.ToLowerInvariant(c));
            }
            else sb.Append(c);
        }
        return sb.ToString();
    }

    private static Type Core(Type t) => Nullable.GetUnderlyingType(t) ?? t;

    private static string TypeText(Type t)
    {
        t = Core(t);
        if (t == typeof(int) || t == typeof(long)) return "int";
        if (t == typeof(double) || t == typeof(float)) return "float";
        if (t == typeof(bool)) return "bool";
        if (t == typeof(string)) return "string";
        if (t.IsEnum) return "one of " + string.Join("|", EnumNames(t).Select(e => e.Name));
        if (t.IsArray) return TypeText(t.GetElementType()!) + "[]";
        if (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(List<>)) return TypeText(t.GetGenericArguments()[0]) + "[]";
        if (t == typeof(JsonObject) || (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(Dictionary<,>))) return "object";
        if (t == typeof(JsonArray)) return "list";
        return "json";
    }

    private static IReadOnlyList<string>? AllowedOf(Type t, OptionAttribute a)
    {
        if (a.Allowed is { } allowed) return allowed;
        t = Core(t);
        return t.IsEnum ? EnumNames(t).Select(e => e.Name).ToList() : null;
    }

    private static string DefaultText(object? value) => value switch
    {
        null => "(none)",
        Enum e => EnumNames(e.GetType()).First(x => Equals(x.Value, e)).Name,
        JsonNode n => n.ToJsonString(),
        _ => JsonSerializer.Serialize(value, value.GetType()),
    };

    private static IEnumerable<(string Name, string[] Aliases, object Value)> EnumNames(Type t) =>
        t.GetFields(BindingFlags.Public | BindingFlags.Static).Select(f =>
        {
            var a = f.GetCustomAttribute<OptionValueAttribute>();
            return (a?.Name ?? SnakeCase(f.Name), a?.Aliases ?? [], f.GetValue(null)!);
        });

    private static object? Convert(JsonNode node, Type target, Prop prop, string key, string where)
    {
        var t = Core(target);
        ConfigException Bad(string expected) =>
            new($"{where}: hyperparameter '{key}' should be {expected}, got {Cut(node.ToJsonString())}");
        try
        {
            if (t == typeof(JsonObject)) return node as JsonObject is { } o ? o.DeepClone() : throw Bad("an object");
            if (t == typeof(JsonArray)) return node as JsonArray is { } a ? a.DeepClone() : throw Bad("a list");
            if (t == typeof(JsonNode)) return node.DeepClone();
            if (t.IsEnum)
            {
                if (node is not JsonValue v || !v.TryGetValue<string>(out var s)) throw Bad("one of " + string.Join(", ", EnumNames(t).Select(e => $"\"{e.Name}\"")));
                foreach (var (name, aliases, value) in EnumNames(t))
                    if (string.Equals(name, s, StringComparison.OrdinalIgnoreCase) || aliases.Any(x => string.Equals(x, s, StringComparison.OrdinalIgnoreCase))) return value;
                throw new ConfigException($"{where}: hyperparameter '{key}' = \"{Cut(s)}\" is not valid; valid: {string.Join(", ", EnumNames(t).Select(e => e.Name))}");
            }
            if (t == typeof(string))
                return node is JsonValue sv && sv.TryGetValue<string>(out var str) ? str : throw Bad("a string");
            if (t == typeof(bool))
            {
                if (node is JsonValue bv && bv.TryGetValue<bool>(out var b)) return b;
                // MoCo configs sometimes spell flags as 0/1.
                if (node is JsonValue nv && nv.GetValueKind() == JsonValueKind.Number && nv.TryGetValue<double>(out var d) && d is 0 or 1) return d == 1;
                throw Bad("true or false");
            }
            if (t == typeof(int) || t == typeof(long) || t == typeof(double) || t == typeof(float))
                return Number(node, t, key, where) ?? throw Bad(t == typeof(int) || t == typeof(long) ? "a whole number" : "a number");
            if (t.IsArray || (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(List<>)))
            {
                var elem = t.IsArray ? t.GetElementType()! : t.GetGenericArguments()[0];
                if (node is not JsonArray arr) throw Bad($"a list of {TypeText(elem)}");
                if (arr.Count > Limits.MaxListOption) throw new ConfigException($"{where}: hyperparameter '{key}' has {arr.Count} entries; at most {Limits.MaxListOption}");
                var items = Array.CreateInstance(elem, arr.Count);
                for (int i = 0; i < arr.Count; i++)
                {
                    if (arr[i] is null) throw new ConfigException($"{where}: hyperparameter '{key}'[{i}] is null");
                    items.SetValue(Convert(arr[i]!, elem, prop, $"{key}[{i}]", where), i);
                }
                if (t.IsArray) return items;
                var list = (System.Collections.IList)Activator.CreateInstance(t)!;
                foreach (var x in items) list.Add(x);
                return list;
            }
            // Anything else (dictionaries, records): System.Text.Json's own mapping.
            return node.Deserialize(t) ?? throw Bad(TypeText(t));
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException or NotSupportedException)
        {
            throw new ConfigException($"{where}: hyperparameter '{key}' should be {TypeText(t)}, got {Cut(node.ToJsonString())}", e);
        }
    }

    private static object? Number(JsonNode node, Type t, string key, string where)
    {
        if (node is not JsonValue v || v.GetValueKind() != JsonValueKind.Number || !v.TryGetValue<double>(out var d)) return null;
        if (!double.IsFinite(d)) throw new ConfigException($"{where}: hyperparameter '{key}' must be finite, got {node.ToJsonString()}");
        if (t == typeof(double)) return d;
        if (t == typeof(float))
            return Math.Abs(d) > float.MaxValue ? throw new ConfigException($"{where}: hyperparameter '{key}' = {Cut(node.ToJsonString())} is too large") : (float)d;
        if (d != Math.Floor(d)) return null;
        if (t == typeof(int))
            return d is < int.MinValue or > int.MaxValue ? throw new ConfigException($"{where}: hyperparameter '{key}' = {Cut(node.ToJsonString())} is too large") : (int)d;
        return d is < long.MinValue or > long.MaxValue ? throw new ConfigException($"{where}: hyperparameter '{key}' = {Cut(node.ToJsonString())} is too large") : (long)d;
    }

    private static void Check(object? value, Prop prop, string key, JsonNode node, string where)
    {
        var a = prop.Attr;
        switch (value)
        {
            case string s when prop.Info.Allowed is { } allowed && Core(prop.Property.PropertyType) == typeof(string):
                if (!allowed.Contains(s, StringComparer.OrdinalIgnoreCase))
                    throw new ConfigException($"{where}: hyperparameter '{key}' = \"{Cut(s)}\" is not valid; valid: {string.Join(", ", allowed)}");
                break;
            case System.Collections.IEnumerable list and not string and not JsonNode:
                int i = 0;
                foreach (var x in list) CheckNumber(x, a, prop.Info, $"{key}[{i++}]", where);
                break;
            default:
                CheckNumber(value, a, prop.Info, key, where);
                break;
        }
    }

    private static void CheckNumber(object? value, OptionAttribute a, OptionInfo info, string key, string where)
    {
        double? d = value switch { int i => i, long l => l, float f => f, double x => x, _ => null };
        if (d is not { } v) return;
        bool low = !double.IsNaN(a.Min) && (a.MinExclusive ? v <= a.Min : v < a.Min);
        bool high = !double.IsNaN(a.Max) && v > a.Max;
        if (low || high)
            throw new ConfigException($"{where}: hyperparameter '{key}' = {v.ToString("G", CultureInfo.InvariantCulture)} is out of range; valid: {info.RangeText()}");
    }

    private static string? Suggest(string key, IReadOnlyList<Prop> props)
    {
        string? best = null;
        int bestDistance = int.MaxValue;
        foreach (var name in props.SelectMany(p => p.Info.Aliases.Prepend(p.Info.Name)))
        {
            int d = Distance(key.ToLowerInvariant(), name);
            if (d < bestDistance) { bestDistance = d; best = name; }
        }
        return bestDistance <= Math.Max(2, key.Length / 4) ? best : null;
    }

    private static int Distance(string a, string b)
    {
        if (a.Length > 64 || b.Length > 64) return int.MaxValue;
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) prev[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            cur[0] = i;
            for (int j = 1; j <= b.Length; j++)
                cur[j] = Math.Min(Math.Min(prev[j] + 1, cur[j - 1] + 1), prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (prev, cur) = (cur, prev);
        }
        return prev[b.Length];
    }

    /// <summary>Cuts user text for messages (control characters escaped, at most 200 characters).</summary>
    public static string Cut(string text) => Limits.ForMessage(text);
}
