using System.Text.RegularExpressions;
using Microsoft.Extensions.AI;

namespace Consort.Methods.Text;

/// <summary>Options of <see cref="BbmasMethod"/> (MoCo's names and defaults).</summary>
public sealed class BbmasOptions : TeamOptions
{
    /// <summary>Most agents acting per iteration.</summary>
    [Option("Most agents that act in one iteration (drawn at random, seeded; agents idle too long go first).", Min = 1, Max = Limits.MaxRepeats)]
    public int MaxNumAgentsToAct { get; set; } = 1;
    /// <summary>Terminate requests that end the session.</summary>
    [Option("Terminate requests in one iteration that end the session.", Min = 1, Max = Limits.MaxRepeats)]
    public int MinNumAgentsToStop { get; set; } = 1;
    /// <summary>Idle iterations after which an agent must act.</summary>
    [Option("An agent that has not acted for more than this many iterations is made to act.", Min = 0, Max = Limits.MaxRepeats)]
    public int AgentIdleThreshold { get; set; } = 6;
    /// <summary>Most iterations.</summary>
    [Option("Most iterations before the session is ended.", Min = 1, Max = Limits.MaxRepeats)]
    public int MaxIterations { get; set; } = 10;
    /// <summary>Retries of an unreadable action choice or vote.</summary>
    [Option("Attempts at an action choice or a vote that cannot be read.", Min = 1, Max = 100)]
    public int MaxNumRetries { get; set; } = 3;
    /// <summary>Seed of the agent draws.</summary>
    [Option("Seed of which agents act.", DefaultText = "run seed")]
    public int? Seed { get; set; }
}

/// <summary>
/// <c>bbmas</c>: a blackboard multi-agent system. Each agent is its own member model. Every iteration up to
/// <c>max_num_agents_to_act</c> agents first choose an action (propose a strategy, execute a step, verify, critique, or
/// terminate) from the board, then carry it out; the result is written to the shared board. The session ends when
/// <c>min_num_agents_to_stop</c> agents terminate in one iteration (or after <c>max_iterations</c>); the last iteration's
/// conclusions are put to a vote of all agents.
/// </summary>
[CollaborationMethod("bbmas", CollaborationLevel.Text, "Blackboard agents (each its own member) choose and carry out actions on a shared board; conclusions are voted on.",
    Aliases = ["text_bbmas", "blackboard"], MinModels = 1,
    Reference = "Exploring Advanced LLM Multi-Agent Systems Based on Blackboard Architecture (Han and Zhang, 2025), https://arxiv.org/abs/2507.01701")]
public sealed partial class BbmasMethod : CollaborationMethod<BbmasOptions>
{
    /// <summary>The actions, in the words the agents choose them by.</summary>
    public static readonly (string Role, string Phrase)[] Actions =
    [
        ("propose", "propose a solving strategy"), ("execute", "execute a solution step"), ("verify", "verify existing content"),
        ("critique", "critique and refine existing work"), ("terminate", "terminate and finalize the solution"),
    ];

    private const string Global = "You are a participant in a collaborative problem-solving session. Multiple participants are working together on a shared blackboard to solve a problem. "
        + "Your goal is to contribute meaningfully and help the group reach the correct solution.\nWhen referring to previous work, use the format `Entry #<entry_id>`.\n\n"
        + "<problem>\n{question}\n</problem>\n\n<blackboard_content>\n{board}\n</blackboard_content>\n\n";

    private static RolePrompts.Role Act(string what) => new(Global + "At the current step, you have chosen to *{action}*. Your reasoning:\n<reasoning_process>\n{thinking}\n</reasoning_process>\n\n" + what,
        "question", "board", "board_inline", "thinking", "action");

    /// <summary>Default role prompts (MoCo's, shortened).</summary>
    public static readonly RolePrompts Prompts = new(new Dictionary<string, RolePrompts.Role>
    {
        ["select"] = new(Global + "Decide how you can best contribute. Review what has been done, what is missing or wrong, and choose ONE action:\n"
            + "- \"I choose to propose a solving strategy.\"\n- \"I choose to execute a solution step.\"\n- \"I choose to verify existing content.\"\n"
            + "- \"I choose to critique and refine existing work.\"\n- \"I choose to terminate and finalize the solution.\"\n"
            + "Early on, propose or execute; when entries look wrong, verify or critique; when the solution is complete and correct, terminate. Output the exact phrase of your action and stop.",
            "question", "board", "board_inline", "iteration"),
        ["propose"] = Act("Propose a HIGH-LEVEL STRATEGY (analysis, key concepts, approach, step outline, pitfalls); do not solve it yet."),
        ["execute"] = Act("Execute a specific step of the solution rigorously, showing your work."),
        ["verify"] = Act("Verify the existing entries: check each claim and computation, and say which are correct and which are not."),
        ["critique"] = Act("Critique and refine existing work: name the entries, the issues, why they matter, and how to fix them."),
        ["terminate"] = Act("Finalize: synthesize the relevant entries into a complete solution. Format your output as:\nFINAL: [your final answer] {format}"),
        ["vote"] = new(Global + "The conclusions on the blackboard:\n{conclusions}\n\nVote for the most correct conclusion. Finish with: Therefore, I vote for Conclusion #<conclusion_id>.",
            "question", "board", "board_inline", "conclusions", "conclusions_inline"),
    });

    /// <summary>The action a choice names, or null (exactly one action phrase, else exactly one action word).</summary>
    public static string? ParseAction(string text)
    {
        var t = text.ToLowerInvariant();
        var phrases = Actions.Where(a => t.Contains(a.Phrase)).ToList();
        if (phrases.Count == 1) return phrases[0].Role;
        if (phrases.Count > 1) return null;
        var words = Actions.Where(a => Regex.IsMatch(t, $@"\b{a.Role}")).ToList();
        return words.Count == 1 ? words[0].Role : null;
    }

    /// <summary>The conclusion (1-based) a vote names, or null.</summary>
    public static int? ParseVote(string text, string answerOfText, IReadOnlyList<string> conclusionAnswers)
    {
        var m = VoteNumber().Match(text);
        if (m.Success && int.TryParse(m.Groups[1].Value, out var k) && k >= 1 && k <= conclusionAnswers.Count) return k;
        int hit = answerOfText.Length == 0 ? -1 : conclusionAnswers.ToList().IndexOf(answerOfText);
        return hit >= 0 ? hit + 1 : null;
    }

    [GeneratedRegex(@"conclusion\s*#\s*(\d+)", RegexOptions.IgnoreCase)]
    private static partial Regex VoteNumber();

    /// <inheritdoc />
    protected override void Validate(BbmasOptions options, MethodPlan plan) => options.Check(Prompts, plan, 1);

    /// <inheritdoc />
    protected override Task<ConsortModel> CreateAsync(MethodContext context, BbmasOptions options, CancellationToken ct)
    {
        var descriptor = DescriptorOf(context, options);
        return Task.FromResult(new ConsortModel(descriptor, new Client(descriptor, context, options, options.Seed ?? context.Seed), null, context.Models, Name));
    }

    private sealed record Entry(int Id, int Agent, int Iteration, string Action, string Text);

    private sealed class Client(ModelDescriptor descriptor, MethodContext context, BbmasOptions settings, int seed) : CollaborationChatClient(descriptor)
    {
        protected override async Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct)
        {
            var run = new TeamRun(context.Models, settings, messages, options, trace, context.MaxConcurrency, context.Answers);
            int n = context.Models.Count;
            var board = new List<Entry>();
            var lastActed = new int[n];
            var rng = new Random(HashCode.Combine(seed, MultiagentFeedbackMethod.StableHash(run.Question)));
            int iteration = 0;
            while (++iteration <= settings.MaxIterations && run.Budget.Allows)
            {
                // Agents idle past the threshold act first; the rest of the seats are drawn at random.
                var forced = Enumerable.Range(0, n).Where(a => iteration - lastActed[a] > settings.AgentIdleThreshold).OrderBy(a => lastActed[a]).ThenBy(a => a).ToList();
                var rest = Enumerable.Range(0, n).Except(forced).OrderBy(_ => rng.Next()).ToList();
                var acting = forced.Concat(rest).Take(Math.Min(n, settings.MaxNumAgentsToAct)).OrderBy(a => a).ToList();
                var (boardText, boardInline) = Render(board);
                var entries = await CollaborationChatClient.ParallelAsync(acting, context.MaxConcurrency, (agent, _, token) =>
                    ActAsync(run, agent, iteration, boardText, boardInline, token), ct).ConfigureAwait(false);
                int stops = 0;
                foreach (var (agent, action, text) in entries.Where(e => e.Action is not null))
                {
                    board.Add(new Entry(board.Count, agent, iteration, action!, text));
                    lastActed[agent] = iteration;
                    if (action == "terminate") stops++;
                }
                if (stops >= settings.MinNumAgentsToStop) break;
            }
            int lastIteration = board.Count == 0 ? 0 : board[^1].Iteration;
            var final = board.Where(e => e.Iteration == lastIteration).ToList();
            var conclusions = final.Where(e => e.Action == "terminate").Select(e => Conclusion(e.Text)).ToList();
            if (conclusions.Count == 0) conclusions = final.Select(e => Conclusion(e.Text)).ToList();
            if (conclusions.Count == 0) throw new ConsortException($"the blackboard stayed empty (budget: {run.Budget.Reached ?? "not reached"})");
            if (conclusions.Count == 1) return run.Finish(conclusions[0]);
            var answers = conclusions.Select(run.AnswerOf).ToList();
            var (b, bi) = Render(board);
            var prompt = run.Render("vote", ("board", b), ("board_inline", bi), ("conclusions", string.Join("\n", conclusions.Select((c, i) => $"Conclusion #{i + 1}: {TeamRun.OneLine(c)}"))),
                ("conclusions_inline", string.Join(" | ", conclusions.Select(TeamRun.OneLine))));
            var votes = new int[conclusions.Count];
            var ballots = await CollaborationChatClient.ParallelAsync(Enumerable.Range(0, n).ToList(), context.MaxConcurrency, async (agent, _, token) =>
            {
                for (int attempt = 0; attempt < settings.MaxNumRetries; attempt++)
                {
                    var r = (await run.RoundAsync([new TeamAsk(agent, "vote", iteration, prompt) { Data = new() { ["attempt"] = attempt + 1 } }], token).ConfigureAwait(false))[0];
                    if (r is null) return (int?)null;
                    if (ParseVote(r.Text, r.Answer, answers) is { } k) return k;
                }
                return null;
            }, ct).ConfigureAwait(false);
            foreach (var k in ballots) if (k is { } v) votes[v - 1]++;
            int winner = Enumerable.Range(0, votes.Length).OrderByDescending(i => votes[i]).ThenBy(i => i).First();
            trace.Add(new TraceEntry { Model = "vote", Role = "vote", Output = conclusions[winner], Data = new() { ["votes"] = votes.ToList(), ["conclusions"] = conclusions.Count } });
            return run.Finish(conclusions[winner]);
        }

        private async Task<(int Agent, string? Action, string Text)> ActAsync(TeamRun run, int agent, int iteration, string board, string boardInline, CancellationToken ct)
        {
            for (int attempt = 0; attempt < settings.MaxNumRetries; attempt++)
            {
                var choice = (await run.RoundAsync([new TeamAsk(agent, "select", iteration, run.Render("select", ("board", board), ("board_inline", boardInline),
                    ("iteration", iteration.ToString()))) { Data = new() { ["attempt"] = attempt + 1 } }], ct).ConfigureAwait(false))[0];
                if (choice is null) return (agent, null, "");
                if (ParseAction(choice.Text) is not { } action) continue;
                var phrase = Actions.First(a => a.Role == action).Phrase;
                var done = (await run.RoundAsync([new TeamAsk(agent, action, iteration, run.Render(action, ("board", board), ("board_inline", boardInline),
                    ("thinking", TeamRun.OneLine(choice.Text)), ("action", phrase)))], ct).ConfigureAwait(false))[0];
                return done is null ? (agent, null, "") : (agent, action, done.Text.Trim());
            }
            return (agent, "invalid", "INVALID ACTION");
        }

        private static string Conclusion(string text)
        {
            int k = text.LastIndexOf("FINAL:", StringComparison.OrdinalIgnoreCase);
            return (k >= 0 ? text[(k + "FINAL:".Length)..] : text).Trim();
        }

        private static (string Board, string Inline) Render(List<Entry> board)
        {
            if (board.Count == 0) return ("The blackboard is currently empty.", "");
            var text = string.Join("\n\n", board.GroupBy(e => e.Iteration).Select(g => $"At iteration {g.Key}:\n"
                + string.Join("\n", g.Select(e => $"- Entry #{e.Id} (Agent {e.Agent}, {e.Action}): {TeamRun.OneLine(e.Text)}"))));
            // The inline form shows what the entries say (for small models): abstentions and invalid actions are left out.
            var said = board.Where(e => e.Action != "invalid" && !TeamRun.IsAbstention(AnswerExtractor.GenericNormalize(e.Text))).Select(e => TeamRun.OneLine(Conclusion(e.Text))).ToList();
            return (text, string.Join(" | ", said));
        }
    }
}
