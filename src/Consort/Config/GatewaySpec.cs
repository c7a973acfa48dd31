using System.Text.Json;
using System.Text.Json.Nodes;
using Consort.Gateway;
using Microsoft.Extensions.AI;

namespace Consort.Config;

/// <summary>
/// A model entry with gateway keys: several <c>deployments</c> (endpoints or local replicas) behind one name with a
/// <c>routing</c> strategy, health tracking and cooldown, and <c>fallbacks</c> / <c>context_window_fallbacks</c> to
/// other models or collaborations of the same config (resolved by name after parsing, see <see cref="ResolveAll"/>).
/// </summary>
/// <param name="Name">Name in results and at the server.</param>
/// <param name="Deployments">What serves the model (one or more specs of the same model).</param>
/// <param name="Labels">Deployment names for logs and metrics.</param>
/// <param name="Weights">Deployment weights (routing <c>weighted</c>).</param>
/// <param name="Options">Routing, cooldown, retries, stall limit.</param>
/// <param name="FallbackNames">Models to try on errors, timeouts and rate limits.</param>
/// <param name="ContextWindowFallbackNames">Models to try when the prompt does not fit.</param>
public sealed record GatewaySpec(string Name, IReadOnlyList<ModelSpec> Deployments, IReadOnlyList<string> Labels, IReadOnlyList<double> Weights,
    GatewayOptions Options, IReadOnlyList<string> FallbackNames, IReadOnlyList<string> ContextWindowFallbackNames) : ModelSpec(Name)
{
    /// <summary>Keys that make a model entry a gateway entry.</summary>
    public static readonly string[] Keys =
        ["deployments", "routing", "allowed_fails", "cooldown_s", "retries", "num_retries", "fallbacks", "context_window_fallbacks", "stream_stall_s", "attempt_timeout_s"];

    /// <summary>Fallback specs, filled by <see cref="ResolveAll"/>.</summary>
    public List<ModelSpec> Fallbacks { get; } = [];
    /// <summary>Context-window fallback specs, filled by <see cref="ResolveAll"/>.</summary>
    public List<ModelSpec> ContextWindowFallbacks { get; } = [];
    /// <summary>True once the fallback names are resolved.</summary>
    public bool Resolved { get; private set; }

    /// <summary>True when <paramref name="entry"/> uses a gateway key.</summary>
    public static bool IsGatewayEntry(JsonObject entry) => Keys.Any(entry.ContainsKey);

    /// <summary>Parses a gateway entry; <paramref name="parse"/> parses each deployment (or the entry without its gateway keys).</summary>
    public static GatewaySpec Parse(JsonObject entry, Func<JsonNode, string, ModelSpec> parse, string where)
    {
        string? name = entry["name"] is JsonValue nv && nv.TryGetValue<string>(out var n) && n.Length > 0 ? n : null;
        var deployments = new List<ModelSpec>();
        var labels = new List<string>();
        var weights = new List<double>();
        if (entry["deployments"] is { } dn)
        {
            if (name is null) throw new ConfigException($"{where}: an entry with 'deployments' needs a 'name'");
            if (dn is not JsonArray arr || arr.Count == 0) throw new ConfigException($"{where}: model '{name}': 'deployments' must be a non-empty list of model entries");
            foreach (var (key, _) in entry)
                if (key is not "name" && !Keys.Contains(key))
                    throw new ConfigException($"{where}: model '{name}': unknown key '{key}' beside 'deployments'; valid keys: name, {string.Join(", ", Keys)}");
            for (int i = 0; i < arr.Count; i++)
            {
                string at = $"{where} > {name} > deployments[{i}]";
                var d = arr[i]?.DeepClone() ?? throw new ConfigException($"{at}: a deployment must be a model entry, got null");
                double weight = 1;
                string? label = null;
                if (d is JsonObject o)
                {
                    if (o["weight"] is { } w)
                    {
                        weight = Num(w, "weight", name, at);
                        if (weight < 0) throw new ConfigException($"{at}: 'weight' must be >= 0, got {weight}");
                        o.Remove("weight");
                    }
                    label = o["name"] is JsonValue lv && lv.TryGetValue<string>(out var l) ? l : null;
                    // The router retries across deployments; an endpoint's own retries would only delay the move.
                    if (arr.Count > 1 && (o.ContainsKey("base_url") || (o["type"] is JsonValue tv && tv.TryGetValue<string>(out var t) && t == "openai")) && !o.ContainsKey("max_retries"))
                        o["max_retries"] = 0;
                }
                var spec = parse(d, at);
                deployments.Add(spec);
                labels.Add(label ?? $"{name}#{i} ({Describe(d, spec)})");
                weights.Add(weight);
            }
        }
        else
        {
            var rest = (JsonObject)entry.DeepClone();
            foreach (var k in Keys) rest.Remove(k);
            var spec = parse(rest, where);
            name ??= spec.Name;
            deployments.Add(spec);
            labels.Add(name);
            weights.Add(1);
        }
        if (labels.Distinct().Count() != labels.Count) throw new ConfigException($"{where}: model '{name}': two deployments have the same name");

        var options = new GatewayOptions
        {
            Routing = entry["routing"] is { } r ? ParseRouting(r, name, where) : RoutingStrategy.RoundRobin,
            AllowedFails = (int?)OptNum(entry, "allowed_fails", name, where, 0, 1000) ?? 1,
            Cooldown = TimeSpan.FromSeconds(OptNum(entry, "cooldown_s", name, where, 0.01, 86400) ?? 30),
            Retries = (int?)(OptNum(entry, "retries", name, where, 0, 20) ?? OptNum(entry, "num_retries", name, where, 0, 20)),
            StreamStall = OptNum(entry, "stream_stall_s", name, where, 0.01, 3600) is { } s ? TimeSpan.FromSeconds(s) : null,
            AttemptTimeout = OptNum(entry, "attempt_timeout_s", name, where, 0.01, 86400) is { } a ? TimeSpan.FromSeconds(a) : null,
        };
        return new GatewaySpec(name, deployments, labels, weights, options, Names(entry, "fallbacks", name, where), Names(entry, "context_window_fallbacks", name, where));
    }

    // A short, credential-free description of a deployment for its default label.
    private static string Describe(JsonNode entry, ModelSpec spec)
    {
        if (entry is JsonObject o && o["base_url"] is JsonValue bv && bv.TryGetValue<string>(out var url) && Uri.TryCreate(url, UriKind.Absolute, out var u))
            return $"{u.Host}:{u.Port}";
        return spec is GgufModelSpec g ? System.IO.Path.GetFileName(g.Path) : spec.Name;
    }

    private static RoutingStrategy ParseRouting(JsonNode node, string name, string where)
    {
        string s = node is JsonValue v && v.TryGetValue<string>(out var x) ? x : throw new ConfigException($"{where}: model '{name}': 'routing' must be a string");
        return s.Replace('-', '_').ToLowerInvariant() switch
        {
            "round_robin" => RoutingStrategy.RoundRobin,
            "least_busy" => RoutingStrategy.LeastBusy,
            "lowest_latency" or "latency_based_routing" => RoutingStrategy.LowestLatency,
            "weighted" or "simple_shuffle" => RoutingStrategy.Weighted,
            _ => throw new ConfigException($"{where}: model '{name}': routing '{s}' is not one of round_robin, least_busy, lowest_latency, weighted"),
        };
    }

    private static double Num(JsonNode node, string key, string name, string where)
    {
        try { return node.Deserialize<double>(); }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new ConfigException($"{where}: model '{name}': '{key}' must be a number, got {node.ToJsonString()}", e);
        }
    }

    private static double? OptNum(JsonObject o, string key, string name, string where, double min, double max)
    {
        if (o[key] is not { } node) return null;
        double v = Num(node, key, name, where);
        if (v < min || v > max || double.IsNaN(v)) throw new ConfigException($"{where}: model '{name}': '{key}' must be between {min} and {max}, got {v}");
        return v;
    }

    private static List<string> Names(JsonObject o, string key, string name, string where) => o[key] switch
    {
        null => [],
        JsonValue v when v.TryGetValue<string>(out var s) => [s],
        JsonArray a when a.All(x => x is JsonValue xv && xv.TryGetValue<string>(out _)) => [.. a.Select(x => x!.GetValue<string>())],
        var other => throw new ConfigException($"{where}: model '{name}': '{key}' must be a list of model names, got {other.ToJsonString()}"),
    };

    /// <summary>
    /// Resolves every gateway spec's fallback names against <paramref name="byName"/> (models and collaborations of the
    /// config) and rejects unknown names and cycles (a model that would need itself to be built).
    /// </summary>
    public static void ResolveAll(IEnumerable<ModelSpec> roots, IReadOnlyDictionary<string, ModelSpec> byName, string where)
    {
        var all = new List<ModelSpec>();
        var seen = new HashSet<ModelSpec>(ReferenceEqualityComparer.Instance);
        void Walk(ModelSpec s)
        {
            if (!seen.Add(s)) return;
            all.Add(s);
            foreach (var c in Children(s)) Walk(c);
        }
        foreach (var r in roots) Walk(r);
        foreach (var g in all.OfType<GatewaySpec>().Where(g => !g.Resolved).ToList())
        {
            foreach (var (names, into) in new[] { (g.FallbackNames, g.Fallbacks), (g.ContextWindowFallbackNames, g.ContextWindowFallbacks) })
                foreach (var n in names)
                {
                    if (!byName.TryGetValue(n, out var f))
                        throw new ConfigException($"{where}: model '{g.Name}': fallback '{n}' is not a model or collaboration of this config; known: {string.Join(", ", byName.Keys)}");
                    if (n == g.Name) throw new ConfigException($"{where}: model '{g.Name}' names itself as a fallback");
                    into.Add(f);
                    Walk(f);
                }
            g.Resolved = true;
        }
        // Building a model builds what it depends on first; a dependency cycle would wait on itself.
        var state = new Dictionary<ModelSpec, int>(ReferenceEqualityComparer.Instance);
        void Visit(ModelSpec s, List<string> path)
        {
            if (state.TryGetValue(s, out int st))
            {
                if (st == 1) throw new ConfigException($"{where}: fallbacks form a cycle: {string.Join(" -> ", path.Append(s.Name))}");
                return;
            }
            state[s] = 1;
            path.Add(s.Name);
            foreach (var c in Children(s)) Visit(c, path);
            path.RemoveAt(path.Count - 1);
            state[s] = 2;
        }
        foreach (var s in all) Visit(s, []);
    }

    private static IEnumerable<ModelSpec> Children(ModelSpec s) => s switch
    {
        CollaborationSpec c => c.Members,
        GatewaySpec g => [.. g.Deployments, .. g.Fallbacks, .. g.ContextWindowFallbacks],
        _ => [],
    };

    /// <summary>What the gateway model offers: its one deployment's access, or text when several share the name.</summary>
    public ModelDescriptor Describe(Func<ModelSpec, ModelDescriptor> describe)
    {
        if (!Resolved && (FallbackNames.Count > 0 || ContextWindowFallbackNames.Count > 0))
            throw new ConfigException($"model '{Name}': its fallbacks were not resolved (GatewaySpec.ResolveAll)");
        var ds = Deployments.Select(describe).ToList();
        foreach (var f in Fallbacks.Concat(ContextWindowFallbacks)) describe(f);
        // One deployment: the model as it is (token and weight access included; routing is for text calls only).
        if (ds.Count == 1) return ds[0] with { Name = Name };
        var first = ds[0];
        var known = ds.Where(d => d.ContextSize > 0).ToList();
        return new ModelDescriptor
        {
            Name = Name,
            Access = ModelAccess.Text,
            ContextSize = known.Count > 0 ? known.Min(d => d.ContextSize) : 0,
            InputPricePerMillion = first.InputPricePerMillion,
            OutputPricePerMillion = first.OutputPricePerMillion,
        };
    }

    /// <summary>Builds the model: deployments behind <see cref="DeploymentChatClient"/>, then <see cref="ModelFallbackChatClient"/> when it has fallbacks.</summary>
    public async Task<ConsortModel> BuildAsync(ModelDescriptor descriptor, Func<ModelSpec, Task<ConsortModel>> build, Action<string>? log)
    {
        var deployed = new List<ConsortModel>();
        foreach (var d in Deployments) deployed.Add(await build(d).ConfigureAwait(false));
        async Task<List<(string, IChatClient)>> Build(List<ModelSpec> specs)
        {
            var list = new List<(string, IChatClient)>();
            foreach (var f in specs) list.Add((f.Name, (await build(f).ConfigureAwait(false)).Chat));
            return list;
        }
        var fallbacks = await Build(Fallbacks).ConfigureAwait(false);
        var contextFallbacks = await Build(ContextWindowFallbacks).ConfigureAwait(false);
        var options = Options with { Log = log };
        var pool = new DeploymentPool(Name, [.. deployed.Select((m, i) => new Deployment(Labels[i], m.Chat, Weights[i]))], options);
        // The first Use is the outermost layer: fallbacks around the routed deployments.
        var builder = new ChatClientBuilder(deployed[0].Chat);
        if (fallbacks.Count + contextFallbacks.Count > 0) builder.UseModelFallbacks(Name, fallbacks, contextFallbacks, options);
        builder.UseDeployments(pool);
        // The chat client is not owned: disposing it would dispose the deployments, which the session owns.
        // One deployment keeps its token access, members and method (a collaboration with fallbacks is still that method).
        return deployed.Count == 1
            ? new ConsortModel(descriptor, builder.Build(), deployed[0].Tokens, deployed[0].Members, deployed[0].Method)
            : new ConsortModel(descriptor, builder.Build(), null, deployed, null);
    }
}
