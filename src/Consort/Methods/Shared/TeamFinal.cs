namespace Consort.Methods;

/// <summary>How a multi-round protocol turns the last round into one answer.</summary>
public enum FinalAnswer
{
    /// <summary>The summarizer (the best member on dev, as MoCo does, or the named one) reads every last answer and writes the final one.</summary>
    Summarizer,
    /// <summary>The most common last answer (abstentions do not vote; ties go to the earlier member).</summary>
    Vote,
}

/// <summary>Shared final steps of the round-based protocols (debate, feedback, topologies).</summary>
public static class TeamFinal
{
    /// <summary>Default prompt of the summarizer role (MoCo's wording).</summary>
    public const string SummarizePrompt = "You are part of a team of AI assistants collaborating to answer the user's question. Each assistant provides their own answer: "
        + "use their answers to create a final, comprehensive answer.\n\nQuestion: {question}\n\nAssistants' answers:\n{answers}\n\nPlease provide a final, comprehensive answer to the question. {format}";

    /// <summary>
    /// The most common answer among <paramref name="replies"/>: abstentions do not vote; ties go to the earliest member
    /// in <paramref name="replies"/> order. Null when nobody said anything.
    /// </summary>
    public static TeamReply? Vote(IEnumerable<TeamReply?> replies)
    {
        var said = replies.Select((r, i) => (r, i)).Where(x => x.r is not null && !x.r.Abstained).ToList();
        if (said.Count == 0) return null;
        return said.GroupBy(x => x.r!.Answer).OrderByDescending(g => g.Count()).ThenBy(g => g.Min(x => x.i)).First().OrderBy(x => x.i).First().r;
    }

    /// <summary>
    /// Ends a protocol: the summarizer reads the answers (<c>summarize</c> role: <c>{answers}</c> bullets,
    /// <c>{answers_inline}</c> joined by " | "; abstentions are left out when anyone said something), or they vote.
    /// </summary>
    public static async Task<Microsoft.Extensions.AI.ChatResponse> FinishAsync(TeamRun run, IReadOnlyList<TeamReply?> last, FinalAnswer mode, int summarizer, int round, CancellationToken ct)
    {
        if (mode == FinalAnswer.Vote)
        {
            var winner = Vote(last) ?? last.FirstOrDefault(r => r is not null) ?? throw new ConsortException("no member answered");
            run.Trace.Add(new TraceEntry { Model = "vote", Role = "vote", Output = winner.Text, Data = new() { ["answer"] = winner.Answer, ["voters"] = last.Count(r => r is not null && !r.Abstained) } });
            return run.Finish(winner.Text, winner.Member);
        }
        var texts = TeamRun.Shown(last);
        var final = await run.RequireAsync(new TeamAsk(summarizer, "summarize", round,
            run.Render("summarize", ("answers", TeamRun.Bullets(texts)), ("answers_inline", string.Join(" | ", texts)))), ct).ConfigureAwait(false);
        return run.Finish(final.Text, final.Member);
    }
}
