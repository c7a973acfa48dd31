using Consort.Decoding;
using Consort.Methods;
using Consort.Methods.Api;
using Consort.Testing;
using Microsoft.Extensions.AI;

namespace Consort.Tests.Methods.Api;

/// <summary>Protocol tests of co_llm on table-driven token models (real decoding, no model files).</summary>
public class CoLlmTests
{
    // Same alphabet, so one vocabulary; the generator knows greetings, the mentor knows sums.
    // Little smoothing: the generator is sure of "hello" and unsure only where its corpus branches ("there", "friend", "you").
    internal static ConsortModel Generator() => new TableTokenModel("gen", ["q: hi a: hello there", "q: hi a: hello friend", "q: hey a: hello you"], smoothing: 0.001).AsModel();
    internal static ConsortModel Mentor() => new TableTokenModel("mentor", ["q: 2+2= a: 4", "q: 3+4= a: 7", "q: hi a: 9"]).AsModel();

    private static ChatMessage[] Ask(string q) => [new(ChatRole.User, q)];
    private static readonly ChatOptions Greedy = new() { Temperature = 0, MaxOutputTokens = 12 };

    [Fact]
    public async Task Threshold_one_never_defers_and_threshold_zero_always_defers()
    {
        var (g, m) = (Generator(), Mentor());
        var alone = (await g.Chat.GetResponseAsync(Ask("q: hi a:"), Greedy)).Text;
        var mentorAlone = (await m.Chat.GetResponseAsync(Ask("q: hi a:"), Greedy)).Text;
        using var never = await MethodHarness.CreateAsync(new CoLlmMethod(), [g, m], """{"deferral": "top1", "deferral_threshold": 1}""");
        var r = await never.Chat.GetResponseAsync(Ask("q: hi a:"), Greedy);
        Assert.Equal(alone, r.Text);
        Assert.Equal(0, Convert.ToInt32(r.GetTrace()[0].Data!["deferred_tokens"]));

        using var always = await MethodHarness.CreateAsync(new CoLlmMethod(), [g, m], """{"deferral": "top1", "deferral_threshold": 0}""");
        var a = await always.Chat.GetResponseAsync(Ask("q: hi a:"), Greedy);
        Assert.Equal(mentorAlone, a.Text);
        Assert.Equal(1.0, (double)a.GetTrace()[0].Data!["deferral_rate"]!);
    }

    [Fact]
    public async Task It_defers_exactly_the_tokens_whose_deferral_probability_exceeds_the_threshold()
    {
        var (g, m) = (Generator(), Mentor());
        const double threshold = 0.3;
        using var c = await MethodHarness.CreateAsync(new CoLlmMethod(), [g, m], $$"""{"deferral": "top1", "deferral_threshold": {{threshold}}}""");
        var r = await c.Chat.GetResponseAsync(Ask("q: hi a:"), Greedy);
        var data = r.GetTrace()[0].Data!;
        var deferredAt = ((IEnumerable<int>)data["deferred_at"]!).ToHashSet();
        // Replay: the generator's distribution after the prompt and the answer so far decides each step.
        var tok = g.Tokens!;
        var prompt = new PlainPromptEncoder(tok.Tokenizer, addBos: true).EncodePrompt(Ask("q: hi a:"));
        var answer = tok.Tokenizer.Encode(r.Text);
        var expected = new HashSet<int>();
        for (int step = 0; step < answer.Length; step++)
        {
            using var s = await tok.StartAsync([.. prompt, .. answer[..step]]);
            if (1 - TokenTrack.TopProbability(s.Next) > threshold) expected.Add(step);
        }
        Assert.NotEmpty(expected);
        Assert.True(expected.Count < answer.Length, "the test needs some steps under the threshold");
        Assert.Equal(expected.Order(), deferredAt.Where(i => i < answer.Length).Order());
        Assert.Equal(["gen", "mentor"], r.GetTrace().Select(t => t.Model));
    }

    [Fact]
    public async Task The_linear_warm_up_keeps_the_first_tokens_with_the_generator()
    {
        var (g, m) = (Generator(), Mentor());
        using var c = await MethodHarness.CreateAsync(new CoLlmMethod(), [g, m],
            """{"deferral": "top1", "deferral_threshold": 0, "threshold_warmup_schedule": "linear", "threshold_warmup_steps": 4}""");
        var r = await c.Chat.GetResponseAsync(Ask("q: hi a:"), Greedy);
        var at = (IEnumerable<int>)r.GetTrace()[0].Data!["deferred_at"]!;
        Assert.DoesNotContain(0, at); // step 0: threshold 1, nothing exceeds it
        Assert.Contains(4, at);       // after the warm-up: threshold 0
    }

    [Fact]
    public async Task The_classifier_trains_on_dev_tokens_and_its_decision_is_traced()
    {
        var (g, m) = (Generator(), Mentor());
        var dev = TestFitData.FromPairs([("q: 2+2= a:", " 4"), ("q: 3+4= a:", " 7"), ("q: yo a:", " hello friend")]);
        var logs = new List<string>();
        using var c = await MethodHarness.CreateAsync(new CoLlmMethod(), [g, m], """{"deferral": "classifier"}""", dev, log: logs.Add);
        Assert.Contains(logs, l => l.Contains("deferral classifier trained on") && l.Contains("3 dev examples"));
        var r = await c.Chat.GetResponseAsync(Ask("q: 2+2= a:"), Greedy);
        Assert.Equal("classifier", r.GetTrace()[0].Data!["deferral"]);
    }

    [Theory]
    [InlineData("""{"deferral": "classifier"}""", false, "needs a task with a dev split")]
    [InlineData("""{"deferral_threshold": 1.5}""", true, "deferral_threshold")]
    [InlineData("""{"threshold_warmup_schedule": "exp"}""", true, "cosine")]
    [InlineData("""{"deferral_strategy": "vote"}""", true, "compose")]
    public void Bad_input_is_refused_before_work(string hyperparameters, bool hasDev, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new CoLlmMethod(), [Generator().Descriptor, Mentor().Descriptor], hyperparameters, hasDev));
        Assert.Contains(expected, e.Message);
        Assert.Contains("co_llm", e.Message);
    }

    [Fact]
    public void Members_of_different_vocabularies_or_without_token_access_are_refused_before_work()
    {
        var other = new TableTokenModel("other", ["Q: HI"], alphabet: "QHI: ").AsModel();
        var e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new CoLlmMethod(), [Generator().Descriptor, other.Descriptor], """{"deferral": "top1"}"""));
        Assert.Contains("vocabular", e.Message);
        var text = ScriptedChatClient.Model("endpoint", _ => "x");
        e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new CoLlmMethod(), [Generator().Descriptor, text.Descriptor], """{"deferral": "top1"}"""));
        Assert.Contains("endpoint", e.Message);
        Assert.Equal("co_llm", MethodRegistry.Get("api_collm").Metadata.Name);
        Assert.Equal("co_llm", MethodRegistry.Get("logit_co-llm").Metadata.Name);
    }
}
