using Microsoft.Extensions.AI;

namespace Consort.Methods.Text;

/// <summary>
/// <c>majority_vote</c>: every model samples k answers; the normalized answer with most votes wins
/// (ties go to the answer whose voters were most confident, then to config order).
/// </summary>
public sealed class MajorityVoteMethod : ICollaborationMethod
{
    /// <inheritdoc />
    public string Name => "majority_vote";
    /// <inheritdoc />
    public CollaborationLevel Level => CollaborationLevel.Text;
    /// <inheritdoc />
    public string Description => "Each model samples k answers; the most common normalized answer wins.";
    /// <inheritdoc />
    public ModelAccess Requires => ModelAccess.Text;
    /// <inheritdoc />
    public bool RequiresSharedVocabulary => false;
    /// <inheritdoc />
    public int MinModels => 1;
    /// <inheritdoc />
    public int MaxModels => int.MaxValue;
    /// <inheritdoc />
    public IReadOnlyList<HyperparameterSpec> Hyperparameters =>
    [
        new("samples", "int", "3", "Answers sampled per model (k)."),
        new("temperature", "float", "0.7", "Sampling temperature (0 makes the k samples of a model identical)."),
        new("seed", "int", "run seed", "Base seed; sample j of a model uses seed + j."),
    ];

    /// <inheritdoc />
    public Task<ConsortModel> CreateAsync(MethodContext context, CancellationToken cancellationToken = default)
    {
        var h = context.Hyperparameters;
        int k = h.Get("samples", 3);
        // Stopgap until methods declare typed ranges (issue 9): k answers per model are k calls, so bound it.
        Limits.Check(k, 1, Limits.MaxSamples, "samples", $"method '{Name}'");
        // Sampling is the point of voting: its temperature applies even when the caller asks for greedy decoding.
        var settings = GenerationSettings.From(h) with { Temperature = h.Get("temperature", 0.7f) };
        var descriptor = new ModelDescriptor { Name = context.Name, Access = ModelAccess.Text, ContextSize = context.Models.Min(m => m.Descriptor.ContextSize) };
        var client = new Client(descriptor, context.Models, k, settings, h.Get("seed", context.Seed), context.MaxConcurrency);
        return Task.FromResult(new ConsortModel(descriptor, client, null, context.Models, Name));
    }

    private sealed class Client(ModelDescriptor descriptor, IReadOnlyList<ConsortModel> models, int k, GenerationSettings settings, int seed, int parallelism)
        : CollaborationChatClient(descriptor)
    {
        protected override async Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct)
        {
            var normalize = AnswerNormalizer.From(options);
            var jobs = models.SelectMany((m, mi) => Enumerable.Range(0, k).Select(j => (Model: m, Index: mi, Sample: j))).ToList();
            var answers = await ParallelAsync(jobs, parallelism, async (job, _, token) =>
            {
                var o = settings.Apply(options, seed: (options?.Seed is long s ? (int)s : seed) + job.Sample);
                var response = await CallAsync(job.Model, messages, o, trace, $"sample {job.Sample + 1}", token,
                    r => new() { ["answer"] = normalize(r.Text) }).ConfigureAwait(false);
                return (job.Index, Text: response.Text, Answer: normalize(response.Text), Confidence: Confidence.Of(response) ?? 0);
            }, ct).ConfigureAwait(false);

            var winner = answers
                .Select((a, order) => (a, order))
                .GroupBy(x => x.a.Answer)
                .OrderByDescending(g => g.Count())
                .ThenByDescending(g => g.Average(x => x.a.Confidence))
                .ThenBy(g => g.Min(x => x.order))
                .First();
            var chosen = winner.OrderBy(x => x.order).First().a;
            var response = Answer(chosen.Text);
            response.AdditionalProperties = new() { ["consort.votes"] = winner.Count(), ["consort.voters"] = answers.Length };
            return response;
        }
    }
}
