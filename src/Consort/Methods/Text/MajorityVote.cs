using Microsoft.Extensions.AI;

namespace Consort.Methods.Text;

/// <summary>Options of <see cref="MajorityVoteMethod"/>.</summary>
public sealed class MajorityVoteOptions : MethodOptions
{
    /// <summary>Sampling is the point of voting: its temperature applies even when the caller asks for greedy decoding.</summary>
    public MajorityVoteOptions() { Temperature = 0.7f; }

    /// <summary>Answers sampled per model.</summary>
    [Option("Answers sampled per model (k).", Min = 1, Max = Limits.MaxRepeats)]
    public int Samples { get; set; } = 3;

    /// <summary>Base seed.</summary>
    [Option("Base seed; sample j of a model uses seed + j.", DefaultText = "run seed")]
    public int? Seed { get; set; }
}

/// <summary>
/// <c>majority_vote</c>: every model samples k answers; the normalized answer with most votes wins
/// (ties go to the answer whose voters were most confident, then to config order).
/// </summary>
[CollaborationMethod("majority_vote", CollaborationLevel.Text, "Each model samples k answers; the most common normalized answer wins.",
    Aliases = ["text_majority_vote"], Reference = "Self-consistency (Wang et al., 2023), https://arxiv.org/abs/2203.11171")]
public sealed class MajorityVoteMethod : CollaborationMethod<MajorityVoteOptions>
{
    /// <inheritdoc />
    protected override Task<ConsortModel> CreateAsync(MethodContext context, MajorityVoteOptions options, CancellationToken cancellationToken)
    {
        var descriptor = DescriptorOf(context, options);
        var client = new Client(descriptor, context.Models, options, options.Seed ?? context.Seed, context.MaxConcurrency, context.Answers);
        return Task.FromResult(new ConsortModel(descriptor, client, null, context.Models, Name));
    }

    private sealed class Client(ModelDescriptor descriptor, IReadOnlyList<ConsortModel> models, MajorityVoteOptions settings, int seed, int parallelism, AnswerExtractor answers)
        : CollaborationChatClient(descriptor)
    {
        protected override async Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct)
        {
            var extractor = AnswerExtractor.From(options, answers);
            int k = settings.Samples;
            var jobs = models.SelectMany((m, mi) => Enumerable.Range(0, k).Select(j => (Model: m, Index: mi, Sample: j))).ToList();
            var results = await ParallelAsync(jobs, parallelism, async (job, _, token) =>
            {
                var o = settings.Apply(options, seed: (options?.Seed is long s ? (int)s : seed) + job.Sample);
                var response = await CallAsync(job.Model, messages, o, trace, $"sample {job.Sample + 1}", token,
                    r => new() { ["answer"] = extractor.Normalize(r.Text) }).ConfigureAwait(false);
                return (job.Index, Text: response.Text, Answer: extractor.Normalize(response.Text), Confidence: Confidence.Of(response) ?? 0);
            }, ct).ConfigureAwait(false);

            var winner = results
                .Select((a, order) => (a, order))
                .GroupBy(x => x.a.Answer)
                .OrderByDescending(g => g.Count())
                .ThenByDescending(g => g.Average(x => x.a.Confidence))
                .ThenBy(g => g.Min(x => x.order))
                .First();
            var chosen = winner.OrderBy(x => x.order).First().a;
            var response = Answer(chosen.Text);
            response.AdditionalProperties = new() { [ConsortKeys.Votes] = winner.Count(), [ConsortKeys.Voters] = results.Length };
            return response;
        }
    }
}
