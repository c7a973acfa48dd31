using Microsoft.Extensions.AI;

namespace Consort.Methods.Text;

/// <summary>Options of <see cref="MultiagentRefineMethod"/>.</summary>
public sealed class MultiagentRefineOptions : TeamOptions
{
    /// <summary>Rounds of answers (the first is the independent one).</summary>
    [Option("Rounds of answers: the first round answers alone, each later one revises after reading the others' latest answers (MoCo's round).",
        Aliases = ["round", "num_rounds"], Min = 1, Max = Limits.MaxRepeats)]
    public int Rounds { get; set; } = 3;

    /// <summary>How the final answer is made.</summary>
    [Option("summarizer (MoCo: one member reads every last answer) or vote (the most common last answer).", Aliases = ["final"])]
    public FinalAnswer Aggregate { get; set; } = FinalAnswer.Summarizer;

    /// <summary>The summarizer (a member name).</summary>
    [Option("Member that writes the final answer.", DefaultText = "best member on dev (MoCo)")]
    public string? Summarizer { get; set; }

    /// <summary>Dev questions for choosing the summarizer.</summary>
    [Option("Dev questions used to choose the summarizer (seeded, stratified sample).", Min = 1, Max = 100_000, DefaultText = "all")]
    public int? DevSample { get; set; }
}

/// <summary>
/// <c>multiagent_refine</c> (debate): every member answers; for each further round each member reads the others' latest
/// answers and revises its own; the summarizer (the best member on dev, as MoCo does) writes the final answer, or the
/// last answers vote.
/// </summary>
[CollaborationMethod("multiagent_refine", CollaborationLevel.Text, "Debate: members revise after reading each other's answers for some rounds; a summarizer (or a vote) decides.",
    Aliases = ["text_multiagent_refine", "debate"], MinModels = 2,
    Reference = "Multiagent Debate (Du et al., 2023), https://arxiv.org/abs/2305.14325")]
public sealed class MultiagentRefineMethod : CollaborationMethod<MultiagentRefineOptions>
{
    /// <summary>Default role prompts (MoCo's wording).</summary>
    public static readonly RolePrompts Prompts = new(new Dictionary<string, RolePrompts.Role>
    {
        ["answer"] = new("{question}", "question"),
        ["revise"] = new("You are part of a team of AI assistants collaborating to answer the user's question. Each assistant provides their own answer: use their answers to refine and improve your own answer.\n\n"
            + "Question: {question}\n\nYour previous answer: {previous}\n\nOther assistants' answers:\n{others}\n\nPlease provide a refined answer to the question. {format}",
            "question", "previous", "others", "others_inline"),
        ["summarize"] = new(TeamFinal.SummarizePrompt, "question", "answers", "answers_inline"),
    });

    /// <inheritdoc />
    protected override void Validate(MultiagentRefineOptions options, MethodPlan plan)
    {
        options.Check(Prompts, plan, plan.Members.Count);
        if (DevSelection.Member(plan, "summarizer", options.Summarizer) is null && options.Aggregate == FinalAnswer.Summarizer && !plan.HasDev)
            throw plan.Error("needs 'summarizer' (or aggregate: vote) or a task with a dev split to choose the best member on");
    }

    /// <inheritdoc />
    protected override async Task<ConsortModel> CreateAsync(MethodContext context, MultiagentRefineOptions options, CancellationToken ct)
    {
        int summarizer = options.Aggregate == FinalAnswer.Vote ? 0 : options.Summarizer is { } s ? DevSelection.IndexOf(context, s)
            : await DevSelection.BestAsync(context, options, "the summarizer", ct, options.DevSample).ConfigureAwait(false);
        var descriptor = DescriptorOf(context, options);
        return new ConsortModel(descriptor, new Client(descriptor, context, options, summarizer), null, context.Models, Name);
    }

    private sealed class Client(ModelDescriptor descriptor, MethodContext context, MultiagentRefineOptions settings, int summarizer) : CollaborationChatClient(descriptor)
    {
        protected override async Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct)
        {
            var run = new TeamRun(context.Models, settings, messages, options, trace, context.MaxConcurrency, context.Answers);
            int n = context.Models.Count;
            var latest = new TeamReply?[n];
            int round = 0;
            for (; round < settings.Rounds && run.Budget.Allows; round++)
            {
                var asks = Enumerable.Range(0, n).Select(i =>
                {
                    if (round == 0 || latest[i] is null) return new TeamAsk(i, "answer", round, run.Render("answer"));
                    var others = TeamRun.Shown(latest.Where((_, j) => j != i));
                    return new TeamAsk(i, "revise", round, run.Render("revise", ("previous", TeamRun.OneLine(latest[i]!.Text)),
                        ("others", TeamRun.Bullets(others)), ("others_inline", string.Join(" | ", others))));
                }).ToList();
                var replies = await run.RoundAsync(asks, ct).ConfigureAwait(false);
                // A member dropped from a round (failure or budget) keeps its previous answer.
                for (int i = 0; i < n; i++) latest[i] = replies[i] ?? latest[i];
            }
            return await TeamFinal.FinishAsync(run, latest, settings.Aggregate, summarizer, round, ct).ConfigureAwait(false);
        }
    }
}
