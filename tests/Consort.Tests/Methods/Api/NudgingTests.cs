using Consort.Methods;
using Consort.Methods.Api;
using Consort.Testing;
using Microsoft.Extensions.AI;

namespace Consort.Tests.Methods.Api;

/// <summary>Protocol tests of nudging on table-driven token models (real decoding, no model files).</summary>
public class NudgingTests
{
    private static ConsortModel Base() => new TableTokenModel("base", ["q: hi a: the cat sat on the mat", "q: yo a: the dog ran to the park"]).AsModel();
    // Another alphabet, so another tokenizer: the hand-off is text.
    private static ConsortModel Nudger() => new TableTokenModel("nudger", ["q: hi a: well the cat sat", "q: hey a: well hello"], alphabet: " abcdefghijklmnopqrstuvwxyz:?!,").AsModel();

    private static ChatMessage[] Ask(string q) => [new(ChatRole.User, q)];
    private static readonly ChatOptions Greedy = new() { Temperature = 0, MaxOutputTokens = 24 };

    private static IReadOnlyList<IDictionary<string, object?>> Spans(ChatResponse r) =>
        (IReadOnlyList<Dictionary<string, object?>>)r.GetTrace()[0].Data!["spans"]!;

    [Fact]
    public void The_members_have_different_vocabularies() =>
        Assert.NotEqual(Base().Descriptor.Vocabulary, Nudger().Descriptor.Vocabulary);

    [Fact]
    public async Task Gamma_one_lets_the_nudging_model_write_everything()
    {
        var (b, n) = (Base(), Nudger());
        var alone = (await n.Chat.GetResponseAsync(Ask("q: hi a:"), Greedy)).Text;
        using var m = await MethodHarness.CreateAsync(new NudgingMethod(), [b, n], """{"gamma": 1, "do_sample": false}""");
        var r = await m.Chat.GetResponseAsync(Ask("q: hi a:"), Greedy);
        Assert.Equal(alone, r.Text);
        Assert.All(Spans(r), s => Assert.Equal("nudger", s["model"]));
    }

    [Fact]
    public async Task Gamma_zero_takes_the_first_word_from_the_nudging_model_and_the_rest_from_the_base()
    {
        var (b, n) = (Base(), Nudger());
        using var m = await MethodHarness.CreateAsync(new NudgingMethod(), [b, n], """{"gamma": 0, "do_sample": false}""");
        var r = await m.Chat.GetResponseAsync(Ask("q: hi a:"), Greedy);
        var spans = Spans(r);
        Assert.Equal(["nudger", "base"], spans.Select(s => (string)s["model"]!));
        Assert.Equal(" well", spans[0]["text"]);  // MoCo starts in nudging mode: one complete word
        Assert.StartsWith(" well ", r.Text);
        Assert.Equal(1, Convert.ToInt32(r.GetTrace()[0].Data!["nudges"]));
        Assert.Equal(["base", "nudger"], r.GetTrace().Select(t => t.Model));
    }

    [Fact]
    public async Task In_between_both_models_write_and_the_deferral_rate_is_their_token_share()
    {
        var (b, n) = (Base(), Nudger());
        using var m = await MethodHarness.CreateAsync(new NudgingMethod(), [b, n], """{"gamma": 0.6, "do_sample": false}""");
        var r = await m.Chat.GetResponseAsync(Ask("q: yo a:"), Greedy);
        var data = r.GetTrace()[0].Data!;
        double rate = (double)data["deferral_rate"]!;
        Assert.Equal((double)Convert.ToInt32(data["nudged_tokens"]) / Convert.ToInt32(data["tokens"]), rate, 9);
        Assert.Equal(r.Text, string.Concat(Spans(r).Select(s => (string)s["text"]!)));
    }

    [Fact]
    public async Task Search_on_dev_picks_gamma_and_says_so()
    {
        var (b, n) = (Base(), Nudger());
        // The gold answer is the nudging model's own: only gamma 1 (it writes everything) reproduces it.
        var gold = (await n.Chat.GetResponseAsync(Ask("q: hi a:"), Greedy)).Text;
        var dev = TestFitData.FromPairs([("q: hi a:", gold)], Greedy);
        var logs = new List<string>();
        using var m = await MethodHarness.CreateAsync(new NudgingMethod(), [b, n], """{"search_gamma": true, "gamma_candidates": [0, 1], "do_sample": false}""", dev, log: logs.Add);
        Assert.True(logs.Any(l => l.Contains("chose 'nudger' as the nudging model, gamma 1")), string.Join("\n", logs));
    }

    [Theory]
    [InlineData("""{"nudging_model_id": 2}""", false, "not a member index")]
    [InlineData("""{"nudging_model_id": 0}""", false, "must be another member")]
    [InlineData("""{"search_gamma": true}""", false, "dev split")]
    [InlineData("""{"gamma": 2}""", false, "gamma")]
    public void Bad_input_is_refused_before_work(string hyperparameters, bool hasDev, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new NudgingMethod(), [Base().Descriptor, Nudger().Descriptor], hyperparameters, hasDev));
        Assert.Contains(expected, e.Message);
        Assert.Contains("nudging", e.Message);
    }
}
