using Microsoft.Extensions.AI;

namespace Consort.Methods.Text;

/// <summary>Options of <see cref="MostConfidentMethod"/>.</summary>
public sealed class MostConfidentOptions : MethodOptions
{
    /// <summary>Confidence measure.</summary>
    [Option("Confidence measure: mean (geometric-mean token probability), min, first, sum, average (arithmetic-mean token probability).")]
    public ConfidenceMeasure Confidence { get; set; } = ConfidenceMeasure.Mean;
}

/// <summary>
/// <c>most_confident</c>: every model answers; the answer whose model was most confident in it
/// (by its token probabilities) is kept.
/// </summary>
[CollaborationMethod("most_confident", CollaborationLevel.Text, "Every model answers; keep the answer its model is most confident in.",
    Requires = ModelAccess.Text | ModelAccess.Tokens, MinModels = 2)]
public sealed class MostConfidentMethod : CollaborationMethod<MostConfidentOptions>
{
    /// <inheritdoc />
    protected override Task<ConsortModel> CreateAsync(MethodContext context, MostConfidentOptions options, CancellationToken cancellationToken)
    {
        var descriptor = DescriptorOf(context, options);
        var client = new Client(descriptor, context.Models, options, context.MaxConcurrency);
        return Task.FromResult(new ConsortModel(descriptor, client, null, context.Models, Name));
    }

    private sealed class Client(ModelDescriptor descriptor, IReadOnlyList<ConsortModel> models, MostConfidentOptions settings, int parallelism)
        : CollaborationChatClient(descriptor)
    {
        protected override async Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct)
        {
            var o = settings.Apply(options).RequestingLogprobs();
            var results = await ParallelAsync(models, parallelism, async (m, _, token) =>
            {
                var r = await CallAsync(m, messages, o, trace, "answer", token, x => new() { ["confidence"] = Confidence.Of(x, settings.Confidence) }).ConfigureAwait(false);
                return (m.Name, r.Text, Confidence: Confidence.Of(r, settings.Confidence) ?? double.NegativeInfinity);
            }, ct).ConfigureAwait(false);
            var best = results.MaxBy(r => r.Confidence);
            return AnswerFrom(best.Text, best.Name);
        }
    }
}
