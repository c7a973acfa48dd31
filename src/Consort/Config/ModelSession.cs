using System.Runtime.CompilerServices;
using Consort.Methods;

namespace Consort.Config;

/// <summary>
/// Builds models from specs through the host's <see cref="IModelProvider"/>s: validates everything first
/// (<see cref="Describe"/>: files, capabilities, vocabularies, every hyperparameter value), then loads each model once
/// and owns it until disposed. Collaborations are built by their methods, which load further models through this
/// session as their <see cref="IModelLoader"/>.
/// </summary>
public sealed class ModelSession : IDisposable, IModelLoader
{
    private readonly Dictionary<ModelSpec, Task<ConsortModel>> _built = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<ModelSpec, ModelDescriptor> _described = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<ModelSpec, MethodOptions> _options = new(ReferenceEqualityComparer.Instance);
    private readonly List<ConsortModel> _owned = [];
    private readonly Lock _lock = new();
    private readonly IReadOnlyList<IModelProvider> _providers;

    /// <summary>A session over <paramref name="providers"/> (default: <see cref="ModelProviders.Default"/>).</summary>
    public ModelSession(IEnumerable<IModelProvider>? providers = null)
    {
        _providers = providers?.ToList() ?? ModelProviders.Default;
    }

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
    /// <summary>The task's answer extractor, for calls that carry none.</summary>
    public AnswerExtractor Answers { get; init; } = AnswerExtractor.Generic;
    /// <summary>Host services methods may ask for (embedding generators, trainers).</summary>
    public IServiceProvider? Services { get; init; }
    /// <summary>What errors call a collaboration: "run" under <c>consort run</c>, "collaboration" under <c>consort serve</c>.</summary>
    public string Unit { get; init; } = "run";
    /// <summary>Wraps each model once built (identity, call cache, telemetry: <c>Consort.Caching.ModelDecorator</c>); null: none.</summary>
    public Func<ModelSpec, ConsortModel, ConsortModel>? Decorate { get; init; }

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
        specs.SelectMany(s => s is CollaborationSpec c ? Flatten(c.Members).Prepend(s) : s is GatewaySpec g ? Flatten(g.Deployments).Prepend(s) : [s]);

    /// <summary>
    /// What a spec offers, validated without loading weights: model entries by their provider (files opened and
    /// checked in managed code), collaborations by their method (members, every hyperparameter value, cross-checks).
    /// </summary>
    /// <exception cref="ConfigException">Anything that would fail later, named: run, method, model, key, value.</exception>
    public ModelDescriptor Describe(ModelSpec spec)
    {
        lock (_lock)
            if (_described.TryGetValue(spec, out var known)) return known;
        var d = spec is CollaborationSpec c ? DescribeCollaboration(c) : spec is GatewaySpec gw ? gw.Describe(Describe) : ProviderOf(spec).Describe(spec);
        // What makes its outputs what they are (file digest, endpoint and model), for resumes and caches.
        if (spec is GgufModelSpec or EndpointModelSpec && d.Identity is null) d = d with { Identity = ModelIdentity.Of(spec) };
        lock (_lock) _described[spec] = d;
        return d;
    }

    private IModelProvider ProviderOf(ModelSpec spec) =>
        _providers.FirstOrDefault(p => p.Handles(spec))
        ?? throw new ConfigException($"model '{spec.Name}': no backend handles {spec.GetType().Name} (providers: {string.Join(", ", _providers.Select(p => p.GetType().Name))})");

    private ModelDescriptor DescribeCollaboration(CollaborationSpec c)
    {
        var method = MethodRegistry.Get(c.Method);
        var members = c.Members.Select(Describe).ToList();
        var plan = new MethodPlan { Name = c.Name, Method = method.Metadata, Members = members, HasDev = Dev is not null, BaseDirectory = BaseDirectory, Loader = this, Services = Services, Unit = Unit };
        var options = method.Bind(c.Hyperparameters, plan.Where);
        var d = method.Plan(plan, options);
        lock (_lock) _options[c] = options;
        return d;
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
        var descriptor = Describe(spec); // validation first, always
        ConsortModel model;
        if (spec is CollaborationSpec c)
        {
            var members = new List<ConsortModel>();
            foreach (var m in c.Members) members.Add(await BuildAsync(m, ct).ConfigureAwait(false));
            var method = MethodRegistry.Get(c.Method);
            MethodOptions options;
            lock (_lock) options = _options[c];
            Log?.Invoke($"building '{c.Name}' ({method.Metadata.Name} of {string.Join(", ", members.Select(m => m.Name))})");
            model = await method.CreateAsync(new MethodContext
            {
                Name = c.Name,
                Models = members,
                Options = options,
                Descriptor = descriptor,
                Dev = Dev,
                Seed = Seed,
                MaxConcurrency = MaxConcurrency,
                Log = Log,
                BaseDirectory = BaseDirectory,
                Loader = this,
                Services = Services,
                Answers = Answers,
            }, ct).ConfigureAwait(false);
        }
        else if (spec is GatewaySpec gw) model = await gw.BuildAsync(descriptor, m => BuildAsync(m, ct), Log).ConfigureAwait(false);
        else model = await ProviderOf(spec).CreateAsync(spec, new ModelBuildContext { Seed = Seed, Log = Log }, ct).ConfigureAwait(false);
        if (Decorate is not null) model = Decorate(spec, model);
        lock (_lock) _owned.Add(model);
        return model;
    }

    /// <summary>Loads a further model for a method (validated first); the caller owns it.</summary>
    async Task<ConsortModel> IModelLoader.LoadAsync(ModelSpec spec, CancellationToken cancellationToken)
    {
        if (spec is CollaborationSpec) throw new ArgumentException("a method loads models, not collaborations");
        ProviderOf(spec).Describe(spec);
        return await ProviderOf(spec).CreateAsync(spec, new ModelBuildContext { Seed = Seed, Log = Log }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Disposes every model built, collaborations first.</summary>
    public void Dispose()
    {
        List<ConsortModel> owned;
        lock (_lock) owned = [.. _owned];
        for (int i = owned.Count - 1; i >= 0; i--) owned[i].Dispose();
    }
}
