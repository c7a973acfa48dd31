using Consort.Methods;
using Consort.Methods.Api;
using Consort.Testing;
using Microsoft.Extensions.AI;

namespace Consort.Tests.Methods.Api;

/// <summary>Protocol tests of switch_generation: table-driven token models write the patches, a scripted member selects.</summary>
public class SwitchGenerationTests
{
    // Different alphabets, so different tokenizers: the patches are handed over as text.
    private static ConsortModel A() => new TableTokenModel("a", ["q: go a: aaaa bbbb cccc dddd"]).AsModel();
    private static ConsortModel B() => new TableTokenModel("b", ["q: go a: xxxx yyyy zzzz"], alphabet: " abcdefghijklmnopqrstuvwxyz:!").AsModel();

    // A member whose chat answers are scripted (it selects) and whose tokens come from a table (it could write).
    private static ConsortModel Judge(Func<ScriptedCall, ScriptedReply> reply)
    {
        var t = new TableTokenModel("judge", ["q: go a: jjjj"]);
        return new ConsortModel(t.Descriptor, new ScriptedChatClient(reply), t);
    }

    private static ChatMessage[] Ask(string q) => [new(ChatRole.User, q)];
    private static readonly ChatOptions Greedy = new() { Temperature = 0, MaxOutputTokens = 12 };

    private static IReadOnlyList<Dictionary<string, object?>> Spans(ChatResponse r) =>
        (IReadOnlyList<Dictionary<string, object?>>)r.GetTrace().First(t => t.Data?.ContainsKey("spans") == true).Data!["spans"]!;

    [Fact]
    public async Task The_selector_gets_MoCos_prompt_and_the_patches_alternate_as_it_says()
    {
        // The selector answers 0, 1, 0, ... by the number of patches already in its prompt.
        var selector = Judge(c => (c.Prompt.Split("begins>").Length - 1) % 2 == 0 ? "0" : "1");
        var (a, b) = (A(), B());
        using var m = await MethodHarness.CreateAsync(new SwitchGenerationMethod(), [a, b, selector], """{"patch_size": 4, "selector_model_name": "judge"}""");
        var r = await m.Chat.GetResponseAsync(Ask("q: go a:"), Greedy);
        var calls = ScriptedChatClient.Of(selector).Calls;
        Assert.Equal(3, calls.Count); // 12 tokens / 4 per patch
        Assert.Equal("q: go a: Which model should generate the next segment? Please respond with a number from 0 to 2. The answer is model ", calls[0].Prompt);
        Assert.StartsWith("q: go a: <model 0 begins> ", calls[1].Prompt);
        Assert.Contains(" <model 0 ends> Which model", calls[1].Prompt);
        var spans = Spans(r);
        Assert.Equal(["a", "b", "a"], spans.Select(s => (string)s["model"]!));
        Assert.Equal(r.Text, string.Concat(spans.Select(s => (string)s["text"]!)));
        Assert.Equal(["select (patch 1)", "select (patch 2)", "select (patch 3)"], r.GetTrace().Where(t => t.Role.StartsWith("select")).Select(t => t.Role));
    }

    [Fact]
    public async Task An_answer_that_names_no_member_falls_back_to_a_random_writer_and_says_so()
    {
        var selector = Judge(_ => "no idea");
        using var m = await MethodHarness.CreateAsync(new SwitchGenerationMethod(), [A(), B(), selector], """{"patch_size": 6, "selector_model_name": "judge"}""");
        var r = await m.Chat.GetResponseAsync(Ask("q: go a:"), Greedy);
        Assert.All(r.GetTrace().Where(t => t.Role.StartsWith("select")), t => Assert.Equal("random", t.Data!["fallback"]));
        Assert.NotEmpty(r.Text);
    }

    [Fact]
    public async Task The_trained_selector_learns_from_dev_rollouts_which_member_writes_each_patch()
    {
        // Only b's text scores, so the rollouts credit b at every patch position.
        var three = new ChatOptions { Temperature = 0, MaxOutputTokens = 15 }; // three patches of 5
        var dev = TestFitData.FromPairs([("q: go a:", "xxxx yyyy zzzz")], three);
        var logs = new List<string>();
        using var m = await MethodHarness.CreateAsync(new SwitchGenerationMethod(), [A(), B()], """{"patch_size": 5, "rollout_per_instance": 40}""", dev, log: logs.Add);
        Assert.Contains(logs, l => l.Contains("selector trained on 40 rollouts of 1 dev examples") && l.Contains("writers by patch: b, b, b"));
        var r = await m.Chat.GetResponseAsync(Ask("q: go a:"), three);
        Assert.All(Spans(r), s => Assert.Equal("b", s["model"]));
        Assert.Equal(" xxxx yyyy zzzz", r.Text);
    }

    [Theory]
    [InlineData("""{"selector_model_name": "nobody"}""", true, "names 'nobody', which is not a member")]
    [InlineData("""{}""", false, "dev split")]
    [InlineData("""{"patch_size": 0}""", true, "patch_size")]
    [InlineData("""{"selector_model_name": "a", "random_selection": true}""", true, "give one")]
    public void Bad_input_is_refused_before_work(string hyperparameters, bool hasDev, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new SwitchGenerationMethod(), [A().Descriptor, B().Descriptor], hyperparameters, hasDev));
        Assert.Contains(expected, e.Message);
        Assert.Contains("switch_generation", e.Message);
    }
}
