using Microsoft.Extensions.AI;

namespace Consort.Methods.Text;

/// <summary>How <see cref="SlmMuxMethod"/> and <see cref="MajorityVoteMethod"/> break ties.</summary>
public enum TieBreak
{
    /// <summary>The model that scores best on dev among the tied ones (MoCo's dev-based).</summary>
    [OptionValue("dev-based", "dev_based", "dev")]
    DevBased,
    /// <summary>The first tied model in config order.</summary>
    [OptionValue("model-order", "model_order", "order")]
    ModelOrder,
    /// <summary>A seeded random tied one.</summary>
    Random,
    /// <summary>The answer whose voters were most confident (their token probabilities), then config order.</summary>
    Confidence,
}

/// <summary>Options of <see cref="SlmMuxMethod"/> (MoCo's names and defaults).</summary>
public sealed class SlmMuxOptions : TeamOptions
{
    /// <summary>Sampling is how consistency is measured: the paper's temperature applies unless the config sets one.</summary>
    public SlmMuxOptions() { Temperature = 0.3f; }

    /// <summary>Samples per model.</summary>
    [Option("Answers sampled from each model per question (k).", Min = 1, Max = Limits.MaxRepeats)]
    public int SamplesPerModel { get; set; } = 5;

    /// <summary>Tie-breaking.</summary>
    [Option("Tie-break between equally consistent models: dev-based (best on dev), model-order, random.")]
    public TieBreak Tie { get; set; } = TieBreak.DevBased;

    /// <summary>Seed of the samples and random ties.</summary>
    [Option("Seed: sample j of a model uses seed + j; random ties draw from it too.", DefaultText = "run seed")]
    public int? Seed { get; set; }

    /// <summary>Dev questions for the dev-based tie-break.</summary>
    [Option("Dev questions scored for dev-based ties (seeded, stratified sample).", Min = 1, Max = 100_000, DefaultText = "all")]
    public int? DevSample { get; set; }
}

/// <summary>
/// <c>slm_mux</c>: each model samples k answers; its confidence is how often its most common answer comes up (abstentions
/// do not count); the most consistent model's majority answer wins, ties broken by dev accuracy (or model order, or at random).
/// </summary>
[CollaborationMethod("slm_mux", CollaborationLevel.Text, "Each model samples k answers; the most self-consistent model's majority answer wins (ties by dev accuracy).",
    Aliases = ["text_slm_mux"], MinModels = 1,
    Reference = "SLM-MUX (Wang et al., 2025), https://arxiv.org/abs/2510.05077")]
public sealed class SlmMuxMethod : CollaborationMethod<SlmMuxOptions>
{
    private static readonly RolePrompts Prompts = new(new Dictionary<string, RolePrompts.Role> { ["answer"] = new("{question}", "question") });

    /// <inheritdoc />
    protected override void Validate(SlmMuxOptions options, MethodPlan plan)
    {
        options.Check(Prompts, plan, plan.Members.Count);
        if (options.Tie == TieBreak.Confidence) throw plan.Error("tie", "= confidence is not a tie-break of slm_mux; valid: dev-based, model-order, random");
        if (options.Tie == TieBreak.DevBased && !plan.HasDev) throw plan.Error("tie", "= dev-based needs a task with a dev split (or use model-order or random)");
    }

    /// <inheritdoc />
    protected override async Task<ConsortModel> CreateAsync(MethodContext context, SlmMuxOptions options, CancellationToken ct)
    {
        var dev = options.Tie == TieBreak.DevBased
            ? await DevSelection.ScoresAsync(context, options, Enumerable.Range(0, context.Models.Count).ToList(), options.DevSample, "tie-breaks", ct).ConfigureAwait(false)
            : null;
        var descriptor = DescriptorOf(context, options);
        return new ConsortModel(descriptor, new Client(descriptor, context, options, dev, options.Seed ?? context.Seed), null, context.Models, Name);
    }

    /// <summary>A model's consistency: its most common answer (abstentions left out; ties to the first seen) and that answer's share.</summary>
    public static (string? Answer, double Confidence) Consistency(IEnumerable<string> answers)
    {
        var said = answers.Where(a => !TeamRun.IsAbstention(a)).ToList();
        if (said.Count == 0) return (null, 0);
        var top = said.Select((a, i) => (a, i)).GroupBy(x => x.a).OrderByDescending(g => g.Count()).ThenBy(g => g.Min(x => x.i)).First();
        return (top.Key, (double)top.Count() / said.Count);
    }

    private sealed class Client(ModelDescriptor descriptor, MethodContext context, SlmMuxOptions settings, double[]? dev, int seed) : CollaborationChatClient(descriptor)
    {
        protected override async Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct)
        {
            var run = new TeamRun(context.Models, settings, messages, options, trace, context.MaxConcurrency, context.Answers);
            int n = context.Models.Count, k = settings.SamplesPerModel;
            int baseSeed = options?.Seed is long s ? (int)s : seed;
            var asks = Enumerable.Range(0, n).SelectMany(m => Enumerable.Range(0, k).Select(j =>
                new TeamAsk(m, "sample", -1, run.Render("answer")) { Options = run.OptionsFor(baseSeed + j), Data = new() { ["sample"] = j + 1 } })).ToList();
            var replies = await run.RoundAsync(asks, ct).ConfigureAwait(false);
            var perModel = Enumerable.Range(0, n).Select(m =>
            {
                var mine = replies.Skip(m * k).Take(k).Where(r => r is not null).Select(r => r!).ToList();
                var (answer, confidence) = Consistency(mine.Select(r => r.Answer));
                return (Model: m, Answer: answer, Confidence: confidence, Text: mine.FirstOrDefault(r => r.Answer == answer)?.Text);
            }).ToList();
            double best = perModel.Max(p => p.Confidence);
            var tied = perModel.Where(p => Math.Abs(p.Confidence - best) < 1e-9 && p.Text is not null).ToList();
            if (tied.Count == 0) return run.Finish(replies.FirstOrDefault(r => r is not null)?.Text ?? "");
            var winner = tied.Count == 1 ? tied[0] : settings.Tie switch
            {
                TieBreak.DevBased => tied.OrderByDescending(p => dev![p.Model]).ThenBy(p => p.Model).First(),
                TieBreak.ModelOrder => tied[0],
                _ => tied[new Random(HashCode.Combine(seed, MultiagentFeedbackMethod.StableHash(run.Question))).Next(tied.Count)],
            };
            trace.Add(new TraceEntry
            {
                Model = "slm_mux", Role = "select", Output = winner.Text,
                Data = new() { ["confidence"] = perModel.ToDictionary(p => context.Models[p.Model].Name, p => (object?)p.Confidence), ["tied"] = tied.Count, ["selected"] = context.Models[winner.Model].Name },
            });
            return run.Finish(winner.Text!, context.Models[winner.Model].Name);
        }
    }
}
