using Consort.Methods;
using Consort.Methods.Text;
using Consort.Testing;
using static Consort.Tests.Methods.Text.TeamProtocolTests;

namespace Consort.Tests.Methods.Text;

/// <summary>multiagent_refine and multiagent_feedback: who sees what in which round, and how the final answer is made.</summary>
public class DebateTests
{
    private static readonly string Tiny = Prompts(("answer", "A:{question}"), ("revise", "R:{question}|{previous}|{others_inline}"), ("summarize", "S:{answers_inline}"));

    [Fact]
    public async Task Refine_every_member_revises_after_reading_the_others_latest_answers()
    {
        // Each member appends its round number to what it said before, so each prompt shows exactly which answers it saw.
        ConsortModel M(string name) => ScriptedChatClient.Model(name, c => c.Prompt.StartsWith("S:") ? "final" : $"{name}{c.Number}");
        var a = M("a"); var b = M("b"); var c = M("c");
        var debate = await MethodHarness.CreateAsync(new MultiagentRefineMethod(), [a, b, c], $$"""{"round": 3, "summarizer": "b", "prompts": {{Tiny}}}""");
        var r = await debate.Chat.GetResponseAsync(Q("2+2?"));
        Assert.Equal("final", r.Text);
        Assert.Equal(new[] { "A:2+2?", "R:2+2?|a1|b1 | c1", "R:2+2?|a2|b2 | c2" }, ScriptedChatClient.Of(a).Calls.Select(x => x.Prompt));
        Assert.Equal(new[] { "A:2+2?", "R:2+2?|b1|a1 | c1", "R:2+2?|b2|a2 | c2", "S:a3 | b3 | c3" }, ScriptedChatClient.Of(b).Calls.Select(x => x.Prompt));
        Assert.Equal(new[] { "A:2+2?", "R:2+2?|c1|a1 | b1", "R:2+2?|c2|a2 | b2" }, ScriptedChatClient.Of(c).Calls.Select(x => x.Prompt));
        Assert.Equal(new[] { "round 0 / answer", "round 1 / revise", "round 2 / revise", "round 3 / summarize" }, r.GetTrace().Select(t => t.Role).Distinct());
        Assert.Equal("b", r.GetAnsweredBy());
    }

    [Fact]
    public async Task Refine_shows_only_answers_that_say_something_and_can_vote_instead_of_summarizing()
    {
        var a = ScriptedChatClient.Model("a", c => "-");
        var b = ScriptedChatClient.Model("b", c => "7");
        var c = ScriptedChatClient.Model("c", c => c.Prompt.StartsWith("R:") ? "7" : "unknown");
        var debate = await MethodHarness.CreateAsync(new MultiagentRefineMethod(), [a, b, c], $$"""{"rounds": 2, "aggregate": "vote", "prompts": {{Tiny}}}""");
        var r = await debate.Chat.GetResponseAsync(Q("q"));
        Assert.Equal("7", r.Text);
        // a saw only b's answer (c abstained); when nobody said anything, the abstentions themselves are shown.
        Assert.Equal("R:q|-|7", ScriptedChatClient.Of(a).Calls[1].Prompt);
        Assert.Equal("R:q|7|- | unknown", ScriptedChatClient.Of(b).Calls[1].Prompt);
        var vote = Assert.Single(r.GetTrace(), t => t.Role == "vote");
        Assert.Equal(2, vote.Data!["voters"]);
    }

    [Fact]
    public async Task Refine_picks_the_summarizer_on_dev_as_MoCo_does()
    {
        var dev = TestFitData.FromPairs([("d1", "x"), ("d2", "y")]);
        var a = ScriptedChatClient.Model("a", c => "wrong");
        var b = ScriptedChatClient.Model("b", c => c.Prompt switch { "d1" => "x", "d2" => "y", _ => "from b" });
        var logs = new List<string>();
        var debate = await MethodHarness.CreateAsync(new MultiagentRefineMethod(), [a, b], $$"""{"rounds": 1, "prompts": {{Tiny}}}""", dev: dev, log: logs.Add);
        var r = await debate.Chat.GetResponseAsync(Q("q"));
        Assert.Equal("b", r.GetAnsweredBy());
        Assert.Contains(logs, l => l.Contains("a 0.000, b 1.000"));
        // The default prompts are MoCo's, with the task's answer format.
        var (o, _) = MethodHarness.Plan(new MultiagentRefineMethod(), [a.Descriptor, b.Descriptor], """{"summarizer": "a"}""");
        Assert.StartsWith("You are part of a team of AI assistants collaborating", ((TeamOptions)o).Roles!.Template("revise"));
        Assert.Throws<ConfigException>(() => MethodHarness.Plan(new MultiagentRefineMethod(), [a.Descriptor, b.Descriptor], null));
    }

    [Fact]
    public async Task Feedback_each_answer_gets_feedback_from_feedback_count_others_and_is_revised_with_it()
    {
        ConsortModel M(string name) => ScriptedChatClient.Model(name, c => c.Prompt switch
        {
            var p when p.StartsWith("F:") => $"{name} on {p[2..]}",
            var p when p.StartsWith("V:") => $"{name} revised",
            var p when p.StartsWith("S:") => "final",
            _ => $"{name} answer",
        });
        var members = new[] { M("a"), M("b"), M("c"), M("d") };
        var feedback = Prompts(("answer", "{question}"), ("feedback", "F:{answer}"), ("revise_with_feedback", "V:{previous}|{feedback_inline}"), ("summarize", "S:{answers_inline}"));
        var m = await MethodHarness.CreateAsync(new MultiagentFeedbackMethod(), members, $$"""{"round": 2, "feedback_count": 2, "summarizer": "a", "seed": 5, "prompts": {{feedback}}}""");
        var r = await m.Chat.GetResponseAsync(Q("q"));
        Assert.Equal("final", r.Text);
        var reviewers = MultiagentFeedbackMethod.Reviewers(4, 2, 5, "q", 1);
        string[] names = ["a", "b", "c", "d"];
        for (int i = 0; i < 4; i++)
        {
            Assert.Equal(2, reviewers[i].Length);
            Assert.DoesNotContain(i, reviewers[i]);
            var revise = ScriptedChatClient.Of(members[i]).Calls.Single(c => c.Prompt.StartsWith("V:")).Prompt;
            Assert.Equal($"V:{names[i]} answer|" + string.Join(" | ", reviewers[i].Select(k => $"{names[k]} on {names[i]} answer")), revise);
        }
        Assert.Equal(8, r.GetTrace().Count(t => t.Role == "round 1 / feedback"));
        // The same seed and question draw the same reviewers; other seeds draw others.
        Assert.Equal(reviewers, MultiagentFeedbackMethod.Reviewers(4, 2, 5, "q", 1));
        Assert.Contains(Enumerable.Range(6, 20), s => !MultiagentFeedbackMethod.Reviewers(4, 2, s, "q", 1).Zip(reviewers).All(p => p.First.SequenceEqual(p.Second)));
    }
}
