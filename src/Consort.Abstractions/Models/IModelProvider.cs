using Consort.Config;

namespace Consort;

/// <summary>
/// A backend: says what a model spec offers without loading it, and creates it. One provider per backend
/// package (llama.cpp, OpenAI-compatible endpoints), registered by the host; the config layer and the methods
/// reach backends only through this seam.
/// </summary>
public interface IModelProvider
{
    /// <summary>True when this provider builds <paramref name="spec"/>.</summary>
    bool Handles(ModelSpec spec);

    /// <summary>What the model offers, checked cheaply (files opened and validated in managed code, options checked).</summary>
    /// <exception cref="ConfigException">A missing file, a bad option, an unusable model.</exception>
    ModelDescriptor Describe(ModelSpec spec);

    /// <summary>Creates the model (the caller owns and disposes it).</summary>
    Task<ConsortModel> CreateAsync(ModelSpec spec, ModelBuildContext context, CancellationToken cancellationToken = default);
}

/// <summary>Run-wide settings a provider may use while creating a model.</summary>
public sealed class ModelBuildContext
{
    /// <summary>Seed for models without their own.</summary>
    public int Seed { get; init; } = 42;
    /// <summary>Progress messages.</summary>
    public Action<string>? Log { get; init; }
}

/// <summary>
/// What methods get to load further models (a merged model, the candidates of a search) through the host's
/// providers, without knowing any backend.
/// </summary>
public interface IModelLoader
{
    /// <summary>What a spec offers, without loading it.</summary>
    ModelDescriptor Describe(ModelSpec spec);

    /// <summary>Loads a model; the caller owns and disposes it.</summary>
    Task<ConsortModel> LoadAsync(ModelSpec spec, CancellationToken cancellationToken = default);
}
