using System.Diagnostics;
using Microsoft.Extensions.AI;

namespace Consort.Methods;

/// <summary>One inner call a protocol wants made: which member, in which role and round, with which prompt.</summary>
/// <param name="Member">Index of the member.</param>
/// <param name="Role">Role name (answer, revise, critique, summarize, rank, fuse, knowledge, ...).</param>
/// <param name="Round">Round number (0 = the first answers), or -1 when the call belongs to no round.</param>
/// <param name="Prompt">The rendered role prompt (replaces the request's last user message).</param>
public sealed record TeamAsk(int Member, string Role, int Round, string Prompt)
{
    /// <summary>Options for this call (default: the method's settings over the caller's options).</summary>
    public ChatOptions? Options { get; init; }
    /// <summary>Extra trace data (e.g. which candidates a ranking compared).</summary>
    public Dictionary<string, object?>? Data { get; init; }
}

/// <summary>A member's answer to a <see cref="TeamAsk"/>.</summary>
/// <param name="Ask">What was asked.</param>
/// <param name="Member">The member's name.</param>
/// <param name="Text">The full answer text.</param>
/// <param name="Answer">The normalized final answer (the task's extractor).</param>
/// <param name="Response">The member's response.</param>
public sealed record TeamReply(TeamAsk Ask, string Member, string Text, string Answer, ChatResponse Response)
{
    /// <summary>True when the member said it does not know (see <see cref="TeamRun.IsAbstention"/>).</summary>
    public bool Abstained => TeamRun.IsAbstention(Answer);
}

/// <summary>
/// One request's run of a text-level protocol: renders role prompts, makes the members' calls (a round's calls in
/// parallel under the concurrency bound), records each in the trace with its role and round, applies the quorum
/// (failed members are dropped from a round when enough answered) and the budget (no new calls once a limit is
/// reached; the method finishes with what it has). Shared by every text-level method.
/// </summary>
public sealed class TeamRun
{
    private readonly IReadOnlyList<ConsortModel> _members;
    private readonly TeamOptions _settings;
    private readonly IReadOnlyList<ChatMessage> _request;
    private readonly ChatOptions? _caller;
    private readonly int _parallelism;

    /// <summary>Starts a run for one request.</summary>
    public TeamRun(IReadOnlyList<ConsortModel> members, TeamOptions settings, IReadOnlyList<ChatMessage> request, ChatOptions? callerOptions,
        CallTrace trace, int parallelism, AnswerExtractor fallbackAnswers)
    {
        _members = members; _settings = settings; _request = request; _caller = callerOptions; _parallelism = parallelism;
        Trace = trace;
        Answers = AnswerExtractor.From(callerOptions, fallbackAnswers);
        Budget = (settings.ParsedBudget ?? new RequestBudget(null, null, null, null)).Start();
        Question = CollaborationChatClient.LastUserText(request) ?? "";
    }

    /// <summary>The trace of this request.</summary>
    public CallTrace Trace { get; }
    /// <summary>The task's answer extractor for this request.</summary>
    public AnswerExtractor Answers { get; }
    /// <summary>What the request has spent.</summary>
    public BudgetMeter Budget { get; }
    /// <summary>The question: the request's last user message.</summary>
    public string Question { get; }
    /// <summary>The members.</summary>
    public IReadOnlyList<ConsortModel> Members => _members;

    /// <summary>Answers that mean "I do not know" (after normalization): they are not votes, candidates or knowledge.</summary>
    public static bool IsAbstention(string normalizedAnswer) =>
        normalizedAnswer.Length == 0 || normalizedAnswer is "-" or "unknown" or "i don't know" or "i do not know" or "n/a" or "none";

    /// <summary>The normalized answer of a text.</summary>
    public string AnswerOf(string text) => Answers.Normalize(text);

    /// <summary>Renders a role prompt; <c>{question}</c> is always the request's question.</summary>
    public string Render(string role, params (string Name, string Value)[] values)
    {
        var d = values.ToDictionary(v => v.Name, v => v.Value);
        d.TryAdd("question", Question);
        return _settings.Roles!.Render(role, d, Answers);
    }

    /// <summary>A list of texts as the prompts show them: one per line, "- " before each (MoCo's layout).</summary>
    public static string Bullets(IEnumerable<string> items) => string.Join("\n", items.Select(i => "- " + OneLine(i)));

    /// <summary>Numbered texts ("1. ...") for prompts that refer to candidates by number.</summary>
    public static string Numbered(IEnumerable<string> items) => string.Join("\n", items.Select((x, i) => $"{i + 1}. {OneLine(x)}"));

    /// <summary>
    /// The texts a prompt shows of <paramref name="replies"/> (one line each): the ones that say something, or, when every
    /// member abstained, the abstentions themselves (so the reader sees that nobody knew).
    /// </summary>
    public static List<string> Shown(IEnumerable<TeamReply?> replies)
    {
        var all = replies.Where(r => r is not null).Select(r => r!).ToList();
        var said = all.Where(r => !r.Abstained).ToList();
        return (said.Count > 0 ? said : all).Select(r => OneLine(r.Text)).ToList();
    }

    /// <summary>A text with its line breaks turned into spaces (a candidate or card stays one list item).</summary>
    public static string OneLine(string text) => string.Join(" ", text.Trim().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));

    /// <summary>The request with its last user message replaced by <paramref name="prompt"/> (system messages stay).</summary>
    public IReadOnlyList<ChatMessage> MessagesFor(string prompt)
    {
        var list = _request.ToList();
        int last = list.FindLastIndex(m => m.Role == ChatRole.User);
        if (last < 0) list.Add(new ChatMessage(ChatRole.User, prompt));
        else list[last] = new ChatMessage(ChatRole.User, prompt);
        return list;
    }

    /// <summary>The options of a member call: the method's settings over the caller's.</summary>
    public ChatOptions OptionsFor(int? seed = null) => _settings.Apply(_caller, seed);

    /// <summary>
    /// Makes the call that gives the final answer (a summarizer, an aggregator, a fuser): it is made even when the budget
    /// is spent (the budget ends the rounds before it); a failure is an error naming the member and the role.
    /// </summary>
    public async Task<TeamReply> RequireAsync(TeamAsk ask, CancellationToken ct)
    {
        var (reply, error) = await TryAsync(ask, ct, force: true).ConfigureAwait(false);
        return reply ?? throw new ConsortException($"{RoleText(ask)}: member '{_members[ask.Member].Name}' failed: {error}");
    }

    /// <summary>
    /// Makes a round of calls in parallel (at most the concurrency bound at once), in order of <paramref name="asks"/>.
    /// A failed call is null in the result when the others reach the quorum; a call the budget did not allow is null too.
    /// </summary>
    /// <exception cref="ConsortException">Fewer answers than the quorum (default: every call).</exception>
    public async Task<TeamReply?[]> RoundAsync(IReadOnlyList<TeamAsk> asks, CancellationToken ct)
    {
        var results = await CollaborationChatClient.ParallelAsync(asks, _parallelism, (a, _, token) => TryAsync(a, token), ct).ConfigureAwait(false);
        var failed = results.Select((r, i) => (r, i)).Where(x => x.r.Error is not null).ToList();
        if (failed.Count > 0)
        {
            int answered = results.Count(r => r.Reply is not null);
            int attempted = results.Count(r => r.Reply is not null || r.Error is not null);
            int quorum = Math.Min(_settings.Quorum ?? attempted, attempted);
            if (answered < quorum)
                throw new ConsortException($"{RoleText(asks[failed[0].i])}: {answered} of {attempted} member(s) answered, quorum {quorum}: "
                    + string.Join("; ", failed.Select(f => $"'{_members[asks[f.i].Member].Name}': {f.r.Error}")));
        }
        return results.Select(r => r.Reply).ToArray();
    }

    /// <summary>The final response: the text, who answered, and a trace note when the budget cut the protocol short.</summary>
    public ChatResponse Finish(string text, string? answeredBy = null)
    {
        if (Budget.Reached is { } why)
            Trace.Add(new TraceEntry { Model = "budget", Role = "budget", Output = $"budget reached ({why}): finished with the answers so far" , Data = new() { ["budget_reached"] = why } });
        return answeredBy is null ? CollaborationChatClient.Answer(text) : CollaborationChatClient.AnswerFrom(text, answeredBy);
    }

    private static string RoleText(TeamAsk a) => a.Round >= 0 ? $"round {a.Round} / {a.Role}" : a.Role;

    private async Task<(TeamReply? Reply, string? Error)> TryAsync(TeamAsk ask, CancellationToken ct, bool force = false)
    {
        var member = _members[ask.Member];
        if (!Budget.TryStart(force)) return (null, null);
        var options = ask.Options ?? OptionsFor();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        if (_settings.MemberTimeout > 0) cts.CancelAfter(TimeSpan.FromSeconds(_settings.MemberTimeout));
        var role = RoleText(ask);
        var sw = Stopwatch.StartNew();
        try
        {
            var response = await CollaborationChatClient.CallAsync(member, MessagesFor(ask.Prompt), options, Trace, role, cts.Token, r =>
            {
                var d = new Dictionary<string, object?> { ["role"] = ask.Role, ["round"] = ask.Round, ["answer"] = AnswerOf(r.Text) };
                if (ask.Data is not null) foreach (var (k, v) in ask.Data) d[k] = v;
                return d;
            }).ConfigureAwait(false);
            Budget.Spent((response.Usage?.InputTokenCount ?? 0) + (response.Usage?.OutputTokenCount ?? 0), response.GetCost() ?? member.Descriptor.CostOf(response.Usage?.InputTokenCount ?? 0, response.Usage?.OutputTokenCount ?? 0));
            return (new TeamReply(ask, member.Name, response.Text, AnswerOf(response.Text), response), null);
        }
        catch (Exception e) when (!ct.IsCancellationRequested)
        {
            // The caller did not cancel: the member failed (an error, or its own timeout). Recorded, then the quorum decides.
            string error = e is OperationCanceledException ? $"timed out after {_settings.MemberTimeout:G} s" : Limits.ForMessage(e.Message);
            Trace.Add(new TraceEntry
            {
                Model = member.Name, Role = role, Input = ask.Prompt, LatencyMs = sw.Elapsed.TotalMilliseconds,
                Data = new() { ["role"] = ask.Role, ["round"] = ask.Round, ["error"] = error, ["dropped"] = true },
            });
            return (null, error);
        }
    }
}
