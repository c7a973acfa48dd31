using Consort.Config;

namespace Consort.OpenAI;

/// <summary>The OpenAI-compatible endpoint backend as a model provider (config entries with "base_url" or type "openai").</summary>
public sealed class OpenAIModelProvider : IModelProvider
{
    /// <inheritdoc />
    public bool Handles(ModelSpec spec) => spec is EndpointModelSpec;

    /// <inheritdoc />
    public ModelDescriptor Describe(ModelSpec spec)
    {
        var o = Options(spec);
        o.Validate();
        return OpenAIModelFactory.Describe(o);
    }

    /// <inheritdoc />
    public Task<ConsortModel> CreateAsync(ModelSpec spec, ModelBuildContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(OpenAIModelFactory.Create(Options(spec)));

    private static OpenAIModelOptions Options(ModelSpec spec) =>
        spec is EndpointModelSpec e ? OpenAIModelOptions.FromJson(e.Entry, e.Name) : throw new ArgumentException($"not an endpoint spec: {spec.Name}");
}
