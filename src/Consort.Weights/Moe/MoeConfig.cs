using System.Globalization;
using YamlDotNet.RepresentationModel;

namespace Consort.Weights.Moe;

/// <summary>One expert of a mixture: a dense model whose MLPs become one expert in every layer.</summary>
/// <param name="SourceModel">Model path (absolute).</param>
/// <param name="PositivePrompts">Prompts this expert should get (hidden and cheap_embed gates).</param>
/// <param name="NegativePrompts">Prompts it should not get (their hidden states are subtracted).</param>
/// <param name="NoiseScale">Gaussian noise added to its MLP weights, or null.</param>
/// <param name="ResidualScale">Factor on its down projection, or null.</param>
public sealed record MoeExpert(string SourceModel, IReadOnlyList<string> PositivePrompts, IReadOnlyList<string> NegativePrompts, double? NoiseScale, double? ResidualScale);

/// <summary>
/// A mergekit-moe configuration: <c>base_model</c> (attention, norms, embeddings), <c>experts</c>
/// (source_model, positive_prompts, negative_prompts, noise_scale, residual_scale), <c>gate_mode</c> (hidden,
/// hidden_avg, cheap_embed, random, uniform_random), <c>dtype</c>, <c>experts_per_token</c> (2) and
/// <c>architecture</c> (mixtral; shared experts are for other architectures and refused).
/// </summary>
public sealed record MoeConfig
{
    /// <summary>Gate modes mergekit-moe knows ("uniform" is accepted for uniform_random).</summary>
    public static readonly string[] GateModes = ["hidden", "hidden_avg", "hidden_last", "cheap_embed", "random", "uniform_random"];

    /// <summary>The model whose attention, norms, embeddings and head the mixture keeps.</summary>
    public required string BaseModel { get; init; }
    /// <summary>The experts, in router order.</summary>
    public required IReadOnlyList<MoeExpert> Experts { get; init; }
    /// <summary>How the routers are initialized.</summary>
    public string GateMode { get; init; } = "hidden";
    /// <summary>Output type (float32, float16, bfloat16); null keeps the base's.</summary>
    public string? Dtype { get; init; }
    /// <summary>Experts each token is routed to.</summary>
    public int ExpertsPerToken { get; init; } = 2;

    /// <summary>Loads a mergekit-moe YAML; relative paths resolve against its folder, references through <paramref name="resolve"/>.</summary>
    public static MoeConfig Load(string path, Func<string, string>? resolve = null)
    {
        path = Path.GetFullPath(path);
        if (!File.Exists(path)) throw new ConfigException($"{path}: MoE config not found");
        var yaml = new YamlStream();
        try { using var r = new StreamReader(path); yaml.Load(r); }
        catch (YamlDotNet.Core.YamlException e) { throw new ConfigException($"{path}: invalid YAML at line {e.Start.Line}: {e.Message}", e); }
        if (yaml.Documents.Count == 0 || yaml.Documents[0].RootNode is not YamlMappingNode root) throw new ConfigException($"{path}: the top level must be a mapping");
        string dir = Path.GetDirectoryName(path)!;
        resolve ??= Config.MergeConfig.DefaultResolveReference;
        string Resolve(string s, string what)
        {
            if (!Config.MergeConfig.IsReference(s)) return Path.GetFullPath(Path.Combine(dir, s));
            if (resolve is null) throw new ConfigException($"{path}: {what} '{s}' is a model reference, but nothing here resolves references; give a path");
            return Path.GetFullPath(resolve(s));
        }
        string? Str(YamlMappingNode m, string key) => m.Children.TryGetValue(new YamlScalarNode(key), out var v) ? (v as YamlScalarNode)?.Value : null;
        string[] known = ["base_model", "experts", "gate_mode", "dtype", "experts_per_token", "shared_experts", "architecture"];
        foreach (var k in root.Children.Keys.Select(k => ((YamlScalarNode)k).Value!))
            if (!known.Contains(k)) throw new ConfigException($"{path}: unknown key '{k}' (known: {string.Join(", ", known)})");
        if (root.Children.ContainsKey(new YamlScalarNode("shared_experts")))
            throw new ConfigException($"{path}: shared_experts are for the Qwen and DeepSeek MoE layouts; Consort writes Mixtral-style mixtures (llama.cpp's llama architecture with experts), which have none");
        if (Str(root, "architecture") is { } arch && arch.ToLowerInvariant() is not ("mixtral" or "llama"))
            throw new ConfigException($"{path}: architecture '{arch}' is not supported (Consort writes mixtral)");
        var baseModel = Str(root, "base_model") ?? throw new ConfigException($"{path}: 'base_model' is required");
        var gate = (Str(root, "gate_mode") ?? "hidden").ToLowerInvariant();
        if (gate == "uniform") gate = "uniform_random";
        if (!GateModes.Contains(gate)) throw new ConfigException($"{path}: gate_mode '{gate}' is not known (known: {string.Join(", ", GateModes)})");
        int perToken = 2;
        if (Str(root, "experts_per_token") is { } ept && (!int.TryParse(ept, NumberStyles.None, CultureInfo.InvariantCulture, out perToken) || perToken < 1))
            throw new ConfigException($"{path}: experts_per_token '{ept}' must be a whole number >= 1");
        if (!root.Children.TryGetValue(new YamlScalarNode("experts"), out var en) || en is not YamlSequenceNode seq || seq.Children.Count == 0)
            throw new ConfigException($"{path}: 'experts' must be a non-empty list");
        var experts = new List<MoeExpert>();
        foreach (var (node, i) in seq.Children.Select((n, i) => (n, i)))
        {
            string at = $"{path}: experts[{i}]";
            if (node is not YamlMappingNode m) throw new ConfigException($"{at} must be a mapping with source_model");
            foreach (var k in m.Children.Keys.Select(k => ((YamlScalarNode)k).Value!))
                if (k is not ("source_model" or "positive_prompts" or "negative_prompts" or "noise_scale" or "residual_scale"))
                    throw new ConfigException($"{at}: unknown key '{k}' (known: source_model, positive_prompts, negative_prompts, noise_scale, residual_scale)");
            var src = Str(m, "source_model") ?? throw new ConfigException($"{at} needs source_model");
            List<string> Prompts(string key) => !m.Children.TryGetValue(new YamlScalarNode(key), out var p) ? []
                : p is YamlSequenceNode ps ? ps.Children.Select(x => (x as YamlScalarNode)?.Value ?? throw new ConfigException($"{at}: {key} must be a list of strings")).ToList()
                : throw new ConfigException($"{at}: {key} must be a list of strings");
            double? Num(string key)
            {
                var s = Str(m, key);
                if (s is null) return null;
                return double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d) && d >= 0 ? d
                    : throw new ConfigException($"{at}: {key} '{s}' must be a finite number >= 0");
            }
            experts.Add(new MoeExpert(Resolve(src, $"experts[{i}].source_model"), Prompts("positive_prompts"), Prompts("negative_prompts"), Num("noise_scale"), Num("residual_scale")));
        }
        var c = new MoeConfig { BaseModel = Resolve(baseModel, "base_model"), Experts = experts, GateMode = gate, Dtype = Str(root, "dtype"), ExpertsPerToken = perToken };
        c.Validate();
        return c;
    }

    /// <summary>mergekit-moe's checks of a config (its is_bad_config), before any model is read.</summary>
    public void Validate(bool allowIdenticalExperts = false)
    {
        if (ExpertsPerToken > Experts.Count) throw new ConfigException($"experts_per_token is {ExpertsPerToken} but there are {Experts.Count} experts");
        if (!GateModes.Contains(GateMode)) throw new ConfigException($"gate_mode '{GateMode}' is not known (known: {string.Join(", ", GateModes)})");
        if (GateMode is not ("random" or "uniform_random"))
        {
            for (int i = 0; i < Experts.Count; i++)
                if (Experts[i].PositivePrompts.Count == 0) throw new ConfigException($"experts[{i}] ({Path.GetFileName(Experts[i].SourceModel)}) has no positive_prompts (gate_mode {GateMode} routes by them)");
            if (Experts.Count > 1 && Experts.All(e => e.PositivePrompts.SequenceEqual(Experts[0].PositivePrompts) && e.NegativePrompts.SequenceEqual(Experts[0].NegativePrompts)))
                throw new ConfigException("every expert has the same positive and negative prompts: the router could not tell them apart; give each expert prompts of what it should get");
        }
        if (!allowIdenticalExperts && Experts.Count > 1 && Experts.All(e => e.SourceModel == Experts[0].SourceModel))
            throw new ConfigException("all experts are the same model: the mixture would cost more and answer the same (pass --i-understand-this-is-not-useful-without-training to build it for training)");
    }
}
