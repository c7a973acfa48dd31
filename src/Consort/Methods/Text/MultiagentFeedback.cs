using Microsoft.Extensions.AI;

namespace Consort.Methods.Text;

/// <summary>Options of <see cref="MultiagentFeedbackMethod"/>.</summary>
public sealed class MultiagentFeedbackOptions : TeamOptions
{
    /// <summary>Rounds (the first is the independent answers).</summary>
    [Option("Rounds: the first answers alone; in each later one every member gets feedback from others and revises (MoCo's round).",
        Aliases = ["round", "num_rounds"], Min = 1, Max = Limits.MaxRepeats)]
    public int Rounds { get; set; } = 3;

    /// <summary>Reviewers per member and round.</summary>
    [Option("Other members (drawn at random per question and round, seeded) that give feedback on each member's answer.", Min = 1, Max = Limits.MaxRepeats)]
    public int FeedbackCount { get; set; } = 3;

    /// <summary>How the final answer is made.</summary>
    [Option("summarizer (MoCo: one member reads every last answer) or vote (the most common last answer).", Aliases = ["final"])]
    public FinalAnswer Aggregate { get; set; } = FinalAnswer.Summarizer;

    /// <summary>The summarizer (a member name).</summary>
    [Option("Member that writes the final answer.", DefaultText = "best member on dev (MoCo)")]
    public string? Summarizer { get; set; }

    /// <summary>Seed of the reviewer draws.</summary>
    [Option("Seed of the reviewer draws.", DefaultText = "run seed")]
    public int? Seed { get; set; }

    /// <summary>Dev questions for choosing the summarizer.</summary>
    [Option("Dev questions used to choose the summarizer (seeded, stratified sample).", Min = 1, Max = 100_000, DefaultText = "all")]
    public int? DevSample { get; set; }
}

/// <summary>
/// <c>multiagent_feedback</c>: every member answers; in each further round every member's answer gets feedback from
/// <c>feedback_count</c> other members, and each member revises with the feedback it received; the summarizer (the best
/// member on dev) writes the final answer, or the last answers vote.
/// </summary>
[CollaborationMethod("multiagent_feedback", CollaborationLevel.Text, "Members give each other feedback and revise for some rounds; a summarizer (or a vote) decides.",
    Aliases = ["text_multiagent_feedback"], MinModels = 2,
    Reference = "Don't Hallucinate, Abstain (Feng et al., 2024), https://arxiv.org/abs/2402.00367")]
public sealed class MultiagentFeedbackMethod : CollaborationMethod<MultiagentFeedbackOptions>
{
    /// <summary>Default role prompts (MoCo's wording).</summary>
    public static readonly RolePrompts Prompts = new(new Dictionary<string, RolePrompts.Role>
    {
        ["answer"] = new("{question}", "question"),
        ["feedback"] = new("You are part of a team of AI assistants collaborating to answer the user's question. Below is one assistant's answer to the question. Provide constructive feedback to help improve the answer.\n\n"
            + "Question: {question}\n\nAssistant's Answer: {answer}\n\nPlease provide your feedback.", "question", "answer"),
        ["revise_with_feedback"] = new("You are part of a team of AI assistants collaborating to answer the user's question. Below is your previous answer along with feedback from other assistants. Use the feedback to refine and improve your answer.\n\n"
            + "Question: {question}\n\nYour Previous Answer: {previous}\n\nFeedback from other assistants:\n{feedback}\n\nPlease provide a refined answer to the question. {format}",
            "question", "previous", "feedback", "feedback_inline"),
        ["summarize"] = new(TeamFinal.SummarizePrompt, "question", "answers", "answers_inline"),
    });

    /// <inheritdoc />
    protected override void Validate(MultiagentFeedbackOptions options, MethodPlan plan)
    {
        options.Check(Prompts, plan, plan.Members.Count);
        if (DevSelection.Member(plan, "summarizer", options.Summarizer) is null && options.Aggregate == FinalAnswer.Summarizer && !plan.HasDev)
            throw plan.Error("needs 'summarizer' (or aggregate: vote) or a task with a dev split to choose the best member on");
    }

    /// <inheritdoc />
    protected override async Task<ConsortModel> CreateAsync(MethodContext context, MultiagentFeedbackOptions options, CancellationToken ct)
    {
        int summarizer = options.Aggregate == FinalAnswer.Vote ? 0 : options.Summarizer is { } s ? DevSelection.IndexOf(context, s)
            : await DevSelection.BestAsync(context, options, "the summarizer", ct, options.DevSample).ConfigureAwait(false);
        var descriptor = DescriptorOf(context, options);
        return new ConsortModel(descriptor, new Client(descriptor, context, options, summarizer, options.Seed ?? context.Seed), null, context.Models, Name);
    }

    /// <summary>The reviewers of each member in a round: <paramref name="count"/> others drawn without replacement, reproducibly from the seed, question and round.</summary>
    public static int[][] Reviewers(int members, int count, int seed, string question, int round)
    {
        var rng = new Random(HashCode.Combine(seed, StableHash(question), round));
        return Enumerable.Range(0, members).Select(i =>
        {
            var others = Enumerable.Range(0, members).Where(j => j != i).ToList();
            for (int k = others.Count - 1; k > 0; k--) { int j = rng.Next(k + 1); (others[k], others[j]) = (others[j], others[k]); }
            return others.Take(Math.Min(count, others.Count)).OrderBy(j => j).ToArray();
        }).ToArray();
    }

    /// <summary>A hash of a string that is the same in every process (string.GetHashCode is randomized per process).</summary>
    public static int StableHash(string s)
    {
        unchecked
        {
            uint h = 2166136261;
            foreach (char c in s) { h ^= c; h *= 16777619; }
            return (int)h;
        }
    }

    private sealed class Client(ModelDescriptor descriptor, MethodContext context, MultiagentFeedbackOptions settings, int summarizer, int seed) : CollaborationChatClient(descriptor)
    {
        protected override async Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct)
        {
            var run = new TeamRun(context.Models, settings, messages, options, trace, context.MaxConcurrency, context.Answers);
            int n = context.Models.Count;
            var latest = (await run.RoundAsync(Enumerable.Range(0, n).Select(i => new TeamAsk(i, "answer", 0, run.Render("answer"))).ToList(), ct).ConfigureAwait(false)).ToArray();
            int round = 1;
            for (; round < settings.Rounds && run.Budget.Allows; round++)
            {
                var reviewers = Reviewers(n, settings.FeedbackCount, seed, run.Question, round);
                var jobs = Enumerable.Range(0, n).Where(i => latest[i] is not null).SelectMany(i => reviewers[i].Select(k => (Of: i, By: k))).ToList();
                var feedback = await run.RoundAsync(jobs.Select(j => new TeamAsk(j.By, "feedback", round,
                    run.Render("feedback", ("answer", TeamRun.OneLine(latest[j.Of]!.Text)))) { Data = new() { ["on"] = context.Models[j.Of].Name } }).ToList(), ct).ConfigureAwait(false);
                var asks = new List<TeamAsk>();
                var who = new List<int>();
                for (int i = 0; i < n; i++)
                {
                    if (latest[i] is null) continue;
                    var got = jobs.Select((j, k) => (j, f: feedback[k])).Where(x => x.j.Of == i && x.f is not null).Select(x => x.f!).ToList();
                    var shown = TeamRun.Shown(got);
                    asks.Add(new TeamAsk(i, "revise_with_feedback", round, run.Render("revise_with_feedback", ("previous", TeamRun.OneLine(latest[i]!.Text)),
                        ("feedback", TeamRun.Bullets(shown)), ("feedback_inline", string.Join(" | ", shown)))));
                    who.Add(i);
                }
                var revised = await run.RoundAsync(asks, ct).ConfigureAwait(false);
                for (int k = 0; k < who.Count; k++) latest[who[k]] = revised[k] ?? latest[who[k]];
            }
            return await TeamFinal.FinishAsync(run, latest, settings.Aggregate, summarizer, round, ct).ConfigureAwait(false);
        }
    }
}
