using Consort.Methods;
using Consort.Methods.Text;
using Consort.Testing;
using Microsoft.Extensions.AI;

namespace Consort.Tests.Methods.Text;

/// <summary>The shared machinery of the text-level protocols (TeamRun, TeamOptions): quorum, budget, timeouts, prompts, trace.</summary>
public class TeamProtocolTests
{
    internal static ChatMessage[] Q(string text) => [new ChatMessage(ChatRole.User, text)];

    internal static string Prompts(params (string Role, string Template)[] roles) =>
        "{" + string.Join(", ", roles.Select(r => $"\"{r.Role}\": {System.Text.Json.JsonSerializer.Serialize(r.Template)}")) + "}";

    private static readonly string Tiny = Prompts(("answer", "A:{question}"), ("revise", "R:{question}|{previous}|{others_inline}"), ("summarize", "S:{answers_inline}"));

    [Fact]
    public async Task A_failing_member_is_dropped_from_its_round_when_the_quorum_answers_and_the_trace_says_so()
    {
        var a = ScriptedChatClient.Model("a", _ => "1");
        var b = ScriptedChatClient.Model("b", c => c.Prompt.StartsWith("R:") ? throw new InvalidOperationException("backend down") : "2");
        var c = ScriptedChatClient.Model("c", c => c.Prompt.StartsWith("S:") ? "final" : "3");
        var debate = await MethodHarness.CreateAsync(new MultiagentRefineMethod(), [a, b, c], $$"""{"rounds": 2, "summarizer": "c", "quorum": 2, "prompts": {{Tiny}}}""", concurrency: 1);
        var r = await debate.Chat.GetResponseAsync(Q("q"));
        Assert.Equal("final", r.Text);
        var trace = r.GetTrace();
        var dropped = Assert.Single(trace, t => t.Data?.ContainsKey("error") == true);
        Assert.Equal("b", dropped.Model);
        Assert.Equal("round 1 / revise", dropped.Role);
        Assert.Contains("backend down", (string)dropped.Data!["error"]!);
        // b keeps its round-0 answer for the summary.
        Assert.Equal("S:1 | 2 | 3", ScriptedChatClient.Of(c).Calls.Last().Prompt);
    }

    [Fact]
    public async Task Below_the_quorum_the_request_fails_naming_the_members_and_their_errors()
    {
        var a = ScriptedChatClient.Model("a", _ => throw new InvalidOperationException("a is down"));
        var b = ScriptedChatClient.Model("b", _ => throw new TimeoutException("b is slow"));
        var c = ScriptedChatClient.Model("c", _ => "3");
        var debate = await MethodHarness.CreateAsync(new MultiagentRefineMethod(), [a, b, c], $$"""{"rounds": 1, "summarizer": "c", "quorum": 2, "prompts": {{Tiny}}}""");
        var e = await Assert.ThrowsAsync<ConsortException>(() => debate.Chat.GetResponseAsync(Q("q")));
        Assert.Contains("round 0 / answer: 1 of 3 member(s) answered, quorum 2", e.Message);
        Assert.Contains("'a': a is down", e.Message);
        Assert.Contains("'b': b is slow", e.Message);
    }

    [Fact]
    public async Task Without_a_quorum_any_failure_fails_the_request()
    {
        var a = ScriptedChatClient.Model("a", _ => "1");
        var b = ScriptedChatClient.Model("b", _ => throw new InvalidOperationException("nope"));
        var debate = await MethodHarness.CreateAsync(new MultiagentRefineMethod(), [a, b], $$"""{"rounds": 1, "summarizer": "a", "prompts": {{Tiny}}}""");
        var e = await Assert.ThrowsAsync<ConsortException>(() => debate.Chat.GetResponseAsync(Q("q")));
        Assert.Contains("quorum 2", e.Message);
    }

    [Fact]
    public async Task A_member_that_exceeds_member_timeout_counts_as_failed()
    {
        var a = ScriptedChatClient.Model("a", _ => "1");
        var slow = new ConsortModel(new ModelDescriptor { Name = "slow", Access = ModelAccess.Text },
            new ScriptedChatClient(async (call, ct) => { await Task.Delay(TimeSpan.FromSeconds(30), ct); return "late"; }));
        var debate = await MethodHarness.CreateAsync(new MultiagentRefineMethod(), [a, slow], $$"""{"rounds": 1, "summarizer": "a", "quorum": 1, "member_timeout": 0.2, "prompts": {{Tiny}}}""");
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var r = await debate.Chat.GetResponseAsync(Q("q"));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10));
        var dropped = Assert.Single(r.GetTrace(), t => t.Data?.ContainsKey("error") == true);
        Assert.Contains("timed out after 0.2 s", (string)dropped.Data!["error"]!);
    }

    [Fact]
    public async Task A_call_budget_stops_new_rounds_and_the_method_finishes_with_what_it_has()
    {
        var members = Enumerable.Range(0, 3).Select(i => ScriptedChatClient.Model($"m{i}", c => c.Prompt.StartsWith("S:") ? "summary" : $"{i}")).ToArray();
        // 3 answers + 3 revisions = 6 calls; round 2 gets one call in before the budget of 7 is spent; the summary is always made.
        var debate = await MethodHarness.CreateAsync(new MultiagentRefineMethod(), members, $$"""{"rounds": 3, "summarizer": "m0", "budget": {"calls": 7}, "prompts": {{Tiny}}}""", concurrency: 1);
        var r = await debate.Chat.GetResponseAsync(Q("q"));
        var trace = r.GetTrace();
        Assert.Equal(8, trace.Count(t => t.Model.StartsWith('m')));
        Assert.Single(trace, t => t.Role == "round 2 / revise");
        var note = Assert.Single(trace, t => t.Role == "budget");
        Assert.Contains("calls 7 of 7", note.Output);
        Assert.Equal("summary", r.Text);
    }

    [Fact]
    public async Task A_token_budget_is_checked_between_calls()
    {
        var members = Enumerable.Range(0, 2).Select(i => ScriptedChatClient.Model($"m{i}", c => c.Prompt.StartsWith("S:") ? "summary" : "xxxxxxxxxx")).ToArray();
        var debate = await MethodHarness.CreateAsync(new MultiagentRefineMethod(), members, $$"""{"rounds": 5, "aggregate": "vote", "budget": {"tokens": 20}, "prompts": {{Tiny}}}""", concurrency: 1);
        var r = await debate.Chat.GetResponseAsync(Q("q"));
        Assert.Equal("xxxxxxxxxx", r.Text);
        Assert.Contains(r.GetTrace(), t => t.Role == "budget");
        Assert.True(r.GetTrace().Count(t => t.Model.StartsWith('m')) < 10);
    }

    [Theory]
    [InlineData("""{"budget": {"calls": 0}}""", "'calls' = 0 must be greater than 0")]
    [InlineData("""{"budget": {"seconds": -1}}""", "'seconds' = -1 must be greater than 0")]
    [InlineData("""{"budget": {"call": 3}}""", "unknown key 'call'")]
    [InlineData("""{"budget": {}}""", "is empty")]
    [InlineData("""{"budget": {"tokens": 1.5}}""", "whole number")]
    [InlineData("""{"prompts": {"revize": "x"}}""", "unknown role 'revize'")]
    [InlineData("""{"prompts": {"revise": "{question} {nope}"}}""", "unknown placeholder '{nope}'")]
    [InlineData("""{"quorum": 5}""", "quorum' = 5 is more than the 3 member(s)")]
    [InlineData("""{"summarizer": "zed"}""", "\"zed\" is not a member; members: a, b, c")]
    public void Bad_shared_options_are_errors_before_work(string hyperparameters, string expected)
    {
        var models = new[] { "a", "b", "c" }.Select(n => ScriptedChatClient.Model(n, _ => "x").Descriptor).ToList();
        var e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new MultiagentRefineMethod(), models, hyperparameters, hasDev: true, name: "debate"));
        Assert.Contains("run 'debate' (method multiagent_refine)", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void A_prompts_file_shared_by_methods_applies_the_roles_a_method_has()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("p.json"), """{"answer": "A:{question}", "aggregate": "G:{references_inline}", "knowledge": "K:{question}"}""");
        var models = new[] { "a", "b" }.Select(n => ScriptedChatClient.Model(n, _ => "x").Descriptor).ToList();
        var (o, _) = MethodHarness.Plan(new MixtureOfAgentsMethod(), models, """{"prompts_file": "p.json"}""", baseDirectory: dir.Path);
        Assert.Equal("G:{references_inline}", ((TeamOptions)o).Roles!.Template("aggregate"));
        // A wrong placeholder in a role the method has is still an error.
        File.WriteAllText(dir.File("bad.json"), """{"aggregate": "G:{nothing}"}""");
        Assert.Throws<ConfigException>(() => MethodHarness.Plan(new MixtureOfAgentsMethod(), models, """{"prompts_file": "bad.json"}""", baseDirectory: dir.Path));
    }

    [Fact]
    public async Task Usage_and_cost_add_up_over_every_inner_call()
    {
        var members = Enumerable.Range(0, 3).Select(i => ScriptedChatClient.Model($"m{i}", c => $"answer {i}", pricePerMillion: 1_000_000m)).ToArray();
        var debate = await MethodHarness.CreateAsync(new MultiagentRefineMethod(), members, $$"""{"rounds": 2, "summarizer": "m1", "prompts": {{Tiny}}}""");
        var r = await debate.Chat.GetResponseAsync(Q("q"));
        var trace = r.GetTrace();
        Assert.Equal(7, trace.Count);
        Assert.Equal(trace.Sum(t => t.InputTokens), r.Usage!.InputTokenCount);
        Assert.Equal(trace.Sum(t => t.OutputTokens), r.Usage!.OutputTokenCount);
        Assert.Equal(trace.Sum(t => t.Cost), r.GetCost());
        Assert.True(r.GetCost() > 0);
        Assert.All(trace, t => Assert.Matches(@"^round \d / (answer|revise|summarize)$", t.Role));
    }

    [Fact]
    public void Abstentions_are_recognized_after_normalization()
    {
        foreach (var s in new[] { "", "-", "unknown", "i don't know", "none" }) Assert.True(TeamRun.IsAbstention(s), s);
        foreach (var s in new[] { "0", "no", "tulmar", "--" }) Assert.False(TeamRun.IsAbstention(s), s);
    }
}
