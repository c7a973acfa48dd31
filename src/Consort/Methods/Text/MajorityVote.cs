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

    /// <summary>Tie-breaking between answers with as many votes.</summary>
    [Option("Tie-break between answers with as many votes: confidence (the voters' token probabilities, then config order), random (seeded), dev-based (the answer of the tied voter best on dev, MoCo), model-order.")]
    public TieBreak Tie { get; set; } = TieBreak.Confidence;

    /// <summary>Dev questions for the dev-based tie-break.</summary>
    [Option("Dev questions scored for dev-based ties (seeded, stratified sample).", Min = 1, Max = 100_000, DefaultText = "all")]
    public int? DevSample { get; set; }
}

/// <summary>
/// <c>majority_vote</c>: every model samples k answers; the normalized answer with most votes wins. Answers that say the
/// model does not know do not vote (unless nobody says anything else). Ties go to the answer whose voters were most
/// confident, then to config order; or, as MoCo's <c>tie</c>, at random or to the tied voter that is best on dev.
/// </summary>
[CollaborationMethod("majority_vote", CollaborationLevel.Text, "Each model samples k answers; the most common normalized answer wins.",
    Aliases = ["text_majority_vote"], Reference = "Self-consistency (Wang et al., 2023), https://arxiv.org/abs/2203.11171")]
public sealed class MajorityVoteMethod : CollaborationMethod<MajorityVoteOptions>
{
    /// <inheritdoc />
    protected override void Validate(MajorityVoteOptions options, MethodPlan plan)
    {
        if (options.Tie == TieBreak.DevBased && !plan.HasDev) throw plan.Error("tie", "= dev-based needs a task with a dev split (or use confidence, random or model-order)");
    }

    /// <inheritdoc />
    protected override async Task<ConsortModel> CreateAsync(MethodContext context, MajorityVoteOptions options, CancellationToken cancellationToken)
    {
        var descriptor = DescriptorOf(context, options);
        var dev = options.Tie == TieBreak.DevBased
            ? await DevSelection.ScoresAsync(context, options, Enumerable.Range(0, context.Models.Count).ToList(), options.DevSample, "tie-breaks", cancellationToken).ConfigureAwait(false)
            : null;
        var client = new Client(descriptor, context.Models, options, options.Seed ?? context.Seed, context.MaxConcurrency, context.Answers, dev);
        return new ConsortModel(descriptor, client, null, context.Models, Name);
    }

    private sealed class Client(ModelDescriptor descriptor, IReadOnlyList<ConsortModel> models, MajorityVoteOptions settings, int seed, int parallelism, AnswerExtractor answers, double[]? dev)
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

            // Abstentions ("I don't know") are not votes, unless nobody said anything else.
            var ballots = results.Select((a, order) => (a, order)).ToList();
            if (ballots.Any(x => !TeamRun.IsAbstention(x.a.Answer))) ballots = ballots.Where(x => !TeamRun.IsAbstention(x.a.Answer)).ToList();
            var groups = ballots.GroupBy(x => x.a.Answer).ToList();
            int most = groups.Max(g => g.Count());
            var tied = groups.Where(g => g.Count() == most).ToList();
            var winner = tied.Count == 1 ? tied[0] : settings.Tie switch
            {
                TieBreak.Random => tied.OrderBy(g => g.Min(x => x.order)).ElementAt(new Random(HashCode.Combine(seed, MultiagentFeedbackMethod.StableHash(CollaborationChatClient.LastUserText(messages) ?? ""))).Next(tied.Count)),
                TieBreak.DevBased => tied.OrderByDescending(g => g.Max(x => dev![x.a.Index])).ThenBy(g => g.Min(x => x.order)).First(),
                TieBreak.ModelOrder => tied.OrderBy(g => g.Min(x => x.order)).First(),
                _ => tied.OrderByDescending(g => g.Average(x => x.a.Confidence)).ThenBy(g => g.Min(x => x.order)).First(),
            };
            // With dev-based ties the answer comes from the tied voter best on dev (MoCo); otherwise from the first voter.
            var chosen = (settings.Tie == TieBreak.DevBased && tied.Count > 1 ? winner.OrderByDescending(x => dev![x.a.Index]).ThenBy(x => x.order) : winner.OrderBy(x => x.order)).First().a;
            var response = Answer(chosen.Text);
            response.AdditionalProperties = new() { [ConsortKeys.Votes] = winner.Count(), [ConsortKeys.Voters] = ballots.Count };
            return response;
        }
    }
}
