using System.Text.Json.Nodes;
using Consort.Embeddings;
using Consort.Methods;

namespace Consort.Config;

/// <summary>
/// What the CLI host offers methods through <see cref="MethodPlan.GetService{T}"/>: embedding sources, and model
/// references read as a config's <c>models</c> are (so a hyperparameter may name <c>zoo:base</c>, a GGUF path or an
/// endpoint that is not a member).
/// </summary>
public sealed class HostServices : IServiceProvider
{
    /// <summary>The services of <c>consort run</c>, <c>validate</c> and <c>serve</c>.</summary>
    public static HostServices Default { get; } = new();

    private static readonly ConfigModelReferences References = new();

    /// <inheritdoc />
    public object? GetService(Type serviceType) =>
        serviceType == typeof(IModelReferences) ? References
        : serviceType == typeof(IAnswerModelTrainer) ? Trainer
        : EmbeddingSources.Default.GetService(serviceType);

    private static readonly TinyLlamaAnswerTrainer Trainer = new();

    private sealed class ConfigModelReferences : IModelReferences
    {
        public ModelSpec Parse(JsonNode reference, string baseDirectory, string where) =>
            ModelReferences.Parse(reference.DeepClone(), baseDirectory, null, where);
    }
}
