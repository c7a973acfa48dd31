using Microsoft.Extensions.AI;

namespace Consort.Methods.Text;

/// <summary>
/// <c>most_confident</c>: every model answers; the answer whose model was most confident in it
/// (by its token probabilities) is kept.
/// </summary>
public sealed class MostConfidentMethod : ICollaborationMethod
{
    /// <inheritdoc />
    public string Name => "most_confident";
    /// <inheritdoc />
    public CollaborationLevel Level => CollaborationLevel.Text;
    /// <inheritdoc />
    public string Description => "Every model answers; keep the answer its model is most confident in.";
    /// <inheritdoc />
    public ModelAccess Requires => ModelAccess.Text | ModelAccess.Tokens;
    /// <inheritdoc />
    public bool RequiresSharedVocabulary => false;
    /// <inheritdoc />
    public int MinModels => 2;
    /// <inheritdoc />
    public int MaxModels => int.MaxValue;
    /// <inheritdoc />
    public IReadOnlyList<HyperparameterSpec> Hyperparameters =>
    [
        new("confidence", "string", "\"mean\"", "Confidence measure: mean (geometric-mean token probability), min, first, sum."),
    ];

    /// <inheritdoc />
    public Task<ConsortModel> CreateAsync(MethodContext context, CancellationToken cancellationToken = default)
    {
        var h = context.Hyperparameters;
        string measure = Confidence.Validate(h.Get("confidence", "mean"), Name);
        var descriptor = new ModelDescriptor { Name = context.Name, Access = ModelAccess.Text, ContextSize = context.Models.Min(m => m.Descriptor.ContextSize) };
        var client = new Client(descriptor, context.Models, measure, GenerationSettings.From(h), context.MaxConcurrency);
        return Task.FromResult(new ConsortModel(descriptor, client, null, context.Models, Name));
    }

    private sealed class Client(ModelDescriptor descriptor, IReadOnlyList<ConsortModel> models, string measure, GenerationSettings settings, int parallelism)
        : CollaborationChatClient(descriptor)
    {
        protected override async Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct)
        {
            var o = settings.Apply(options).RequestingLogprobs();
            var results = await ParallelAsync(models, parallelism, async (m, _, token) =>
            {
                var r = await CallAsync(m, messages, o, trace, "answer", token, x => new() { ["confidence"] = Confidence.Of(x, measure) }).ConfigureAwait(false);
                return (m.Name, r.Text, Confidence: Confidence.Of(r, measure) ?? double.NegativeInfinity);
            }, ct).ConfigureAwait(false);
            var best = results.MaxBy(r => r.Confidence);
            var answer = Answer(best.Text);
            answer.AdditionalProperties = new() { ["consort.answered_by"] = best.Name };
            return answer;
        }
    }
}
