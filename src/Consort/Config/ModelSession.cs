using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Consort.Formats.Gguf;
using Consort.LlamaCpp;
using Consort.Methods;
using Consort.OpenAI;

namespace Consort.Config;

/// <summary>
/// Builds models from specs: validates everything first (<see cref="Describe"/>: files, capabilities,
/// vocabularies, hyperparameters), then loads each model once and owns it until disposed.
/// </summary>
public sealed class ModelSession : IDisposable
{
    private readonly Dictionary<ModelSpec, Task<ConsortModel>> _built = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<ModelSpec, ModelDescriptor> _described = new(ReferenceEqualityComparer.Instance);
    private readonly List<ConsortModel> _owned = [];
    private readonly Lock _lock = new();

    /// <summary>Folder for relative paths in hyperparameters.</summary>
    public string BaseDirectory { get; init; } = Environment.CurrentDirectory;
    /// <summary>Dev data for methods that fit themselves.</summary>
    public IFitData? Dev { get; init; }
    /// <summary>Seed for methods.</summary>
    public int Seed { get; init; } = 42;
    /// <summary>Concurrency bound for methods' inner calls.</summary>
    public int MaxConcurrency { get; init; } = 4;
    /// <summary>Progress messages.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>Downloads every <c>hf:</c> model the specs reference that is not yet cached.</summary>
    public static async Task PrepareAsync(IEnumerable<ModelSpec> specs, Action<string>? log = null, CancellationToken cancellationToken = default)
    {
        foreach (var spec in Flatten(specs).OfType<GgufModelSpec>().DistinctBy(s => s.Path))
        {
            if (!spec.Reference.StartsWith("hf:", StringComparison.OrdinalIgnoreCase) || File.Exists(spec.Path)) continue;
            log?.Invoke($"downloading {spec.Reference} ...");
            await HuggingFaceHub.EnsureAsync(HuggingFaceReference.Parse(spec.Reference), cancellationToken: cancellationToken).ConfigureAwait(false);
        }
    }

    private static IEnumerable<ModelSpec> Flatten(IEnumerable<ModelSpec> specs) =>
        specs.SelectMany(s => s is CollaborationSpec c ? Flatten(c.Members).Prepend(s) : [s]);

    /// <summary>
    /// What a spec offers, validated without loading weights: GGUF files are opened and checked in
    /// managed code; collaborations check their method's needs against their members.
    /// </summary>
    public ModelDescriptor Describe(ModelSpec spec)
    {
        lock (_lock)
            if (_described.TryGetValue(spec, out var known)) return known;
        var d = spec switch
        {
            GgufModelSpec g => DescribeGguf(g),
            EndpointModelSpec e => DescribeEndpoint(e),
            CollaborationSpec c => DescribeCollaboration(c),
            _ => throw new ConfigException($"unsupported model spec {spec.GetType().Name}"),
        };
        lock (_lock) _described[spec] = d;
        return d;
    }

    private static ModelDescriptor DescribeGguf(GgufModelSpec g)
    {
        if (!File.Exists(g.Path))
            throw new ConfigException($"model '{g.Name}': {(Directory.Exists(g.Path) ? "is a folder, not a .gguf file" : "file not found")}: {g.Path}" + (g.Reference != g.Path ? $" (from '{g.Reference}')" : ""));
        using var f = GgufFile.Open(g.Path);
        GgufValidator.ThrowIfInvalid(f); // llama.cpp must never see a file it would abort on
        if (f.FileKind == "adapter") throw new ConfigException($"model '{g.Name}': {g.Path} is a LoRA adapter; list it under \"lora\" of its base model");
        foreach (var (path, _) in Adapters(g))
            if (!File.Exists(path)) throw new ConfigException($"model '{g.Name}': LoRA adapter not found: {path}");
        return new ModelDescriptor
        {
            Name = g.Name,
            Access = ModelAccess.Text | ModelAccess.FullLogits | ModelAccess.Weights,
            Vocabulary = f.Vocabulary ?? throw new ModelFileException(g.Path, "no tokenizer (tokenizer.ggml.tokens is missing)"),
            ContextSize = f.ContextLength,
            Architecture = f.Architecture,
            Parameters = f.ParameterCount,
            WeightsPath = g.Path,
        };
    }

    private static ModelDescriptor DescribeEndpoint(EndpointModelSpec e)
    {
        var o = OpenAIModelOptions.FromJson(e.Entry, e.Name);
        return new ModelDescriptor
        {
            Name = o.Name,
            Access = ModelAccess.Text | (o.TopLogprobs > 0 ? ModelAccess.TopKLogprobs : ModelAccess.None),
            TopK = o.TopLogprobs > 0 ? o.TopLogprobs : null,
            Vocabulary = o.TopLogprobs > 0 ? new VocabularyIdentity(o.VocabularySize, "endpoint:" + (o.Vocabulary ?? o.Model), "endpoint") : null,
            ContextSize = o.ContextSize,
            InputPricePerMillion = o.InputPricePerMillion,
            OutputPricePerMillion = o.OutputPricePerMillion,
        };
    }

    private ModelDescriptor DescribeCollaboration(CollaborationSpec c)
    {
        var method = MethodRegistry.Get(c.Method);
        var members = c.Members.Select(Describe).ToList();
        MethodRegistry.Validate(method, members, new Hyperparameters(method.Name, c.Hyperparameters));
        var access = method.Level switch
        {
            CollaborationLevel.Logit => ModelAccess.Text | ModelAccess.FullLogits,
            CollaborationLevel.Weight => ModelAccess.Text | ModelAccess.FullLogits | ModelAccess.Weights,
            _ => ModelAccess.Text,
        };
        return new ModelDescriptor
        {
            Name = c.Name,
            Access = access,
            Vocabulary = access.HasFlag(ModelAccess.FullLogits) ? members[0].Vocabulary : null,
            ContextSize = members.Min(m => m.ContextSize),
        };
    }

    /// <summary>Builds (once) the model for a spec.</summary>
    public Task<ConsortModel> BuildAsync(ModelSpec spec, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            if (!_built.TryGetValue(spec, out var task))
                _built[spec] = task = BuildCoreAsync(spec, cancellationToken);
            return task;
        }
    }

    private async Task<ConsortModel> BuildCoreAsync(ModelSpec spec, CancellationToken ct)
    {
        Describe(spec); // validation first, always
        ConsortModel model;
        switch (spec)
        {
            case GgufModelSpec g:
                model = await Task.Run(() => LlamaModelFactory.Load(new LlamaModelOptions
                {
                    Path = g.Path,
                    Name = g.Name,
                    ContextSize = Opt<int?>(g, "context_size"),
                    Threads = Opt<int?>(g, "threads"),
                    MaxSequences = Opt<int?>(g, "max_sequences") ?? 4,
                    Seed = Opt<int?>(g, "seed") ?? Seed,
                    Adapters = Adapters(g).Select(a => new LoraAdapterOption(a.Path, a.Scale)).ToList(),
                    Unencodable = LlamaModelOptions.ParseUnencodable(Opt<string>(g, "unencodable"), $"model '{g.Name}'"),
                }), ct).ConfigureAwait(false);
                break;
            case EndpointModelSpec e:
                model = OpenAIModelFactory.Create(OpenAIModelOptions.FromJson(e.Entry, e.Name));
                break;
            case CollaborationSpec c:
                var members = new List<ConsortModel>();
                foreach (var m in c.Members) members.Add(await BuildAsync(m, ct).ConfigureAwait(false));
                var method = MethodRegistry.Get(c.Method);
                Log?.Invoke($"building '{c.Name}' ({method.Name} of {string.Join(", ", members.Select(m => m.Name))})");
                model = await method.CreateAsync(new MethodContext
                {
                    Name = c.Name,
                    Models = members,
                    Hyperparameters = new Hyperparameters(method.Name, c.Hyperparameters),
                    Dev = Dev,
                    Seed = Seed,
                    MaxConcurrency = MaxConcurrency,
                    Log = Log,
                    BaseDirectory = BaseDirectory,
                }, ct).ConfigureAwait(false);
                break;
            default:
                throw new ConfigException($"unsupported model spec {spec.GetType().Name}");
        }
        lock (_lock) _owned.Add(model);
        return model;
    }

    private static T? Opt<T>(GgufModelSpec g, string key)
    {
        if (g.Options[key] is not { } node) return default;
        try { return node.Deserialize<T>(); }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new ConfigException($"model '{g.Name}': '{key}' has the wrong type ({node.ToJsonString()})", e);
        }
    }

    private static IEnumerable<(string Path, float Scale)> Adapters(GgufModelSpec g)
    {
        if (g.Options["lora"] is not { } node) yield break;
        var items = node as JsonArray ?? new JsonArray(node.DeepClone());
        var baseDir = Path.GetDirectoryName(g.Path) ?? ".";
        foreach (var item in items)
        {
            switch (item)
            {
                case JsonValue v when v.TryGetValue<string>(out var p):
                    yield return (Path.GetFullPath(p, baseDir), 1f);
                    break;
                case JsonObject o when o["path"]?.GetValue<string>() is { } p2:
                    yield return (Path.GetFullPath(p2, baseDir), o["scale"]?.GetValue<float>() ?? 1f);
                    break;
                default:
                    throw new ConfigException($"model '{g.Name}': each 'lora' entry is a path or {{\"path\": ..., \"scale\": ...}}, got {item?.ToJsonString()}");
            }
        }
    }

    /// <summary>Disposes every model built, collaborations first.</summary>
    public void Dispose()
    {
        List<ConsortModel> owned;
        lock (_lock) owned = [.. _owned];
        for (int i = owned.Count - 1; i >= 0; i--) owned[i].Dispose();
    }
}
