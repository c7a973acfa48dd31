using Consort.Methods.Text;
using Consort.Testing;
using Microsoft.Extensions.AI;
using static Consort.Tests.Methods.Text.TeamProtocolTests;

namespace Consort.Tests.Methods.Text;

/// <summary>knowledge_card, llm_blender and mixture_of_agents: what each role sees, ranking both ways, streaming.</summary>
public class FusionTests
{
    [Fact]
    public async Task Knowledge_card_members_write_cards_and_the_answerer_reads_those_that_say_something()
    {
        var a = ScriptedChatClient.Model("a", c => c.Prompt.StartsWith("K:") ? "Bexor lives in Tulmar." : "?");
        var b = ScriptedChatClient.Model("b", c => c.Prompt.StartsWith("K:") ? "unknown" : "?");
        var reader = ScriptedChatClient.Model("reader", c => c.Prompt.StartsWith("K:") ? "-" : "Tulmar");
        var prompts = Prompts(("knowledge", "K:{question}"), ("answer_with_knowledge", "{knowledge_inline}\n{question}"));
        var kc = await MethodHarness.CreateAsync(new KnowledgeCardMethod(), [a, b, reader], $$"""{"answerer": "reader", "prompts": {{prompts}}}""");
        var r = await kc.Chat.GetResponseAsync(Q("Where does Bexor live?"));
        Assert.Equal("Tulmar", r.Text);
        Assert.Equal("K:Where does Bexor live?", ScriptedChatClient.Of(a).Calls.Single().Prompt);
        Assert.Equal(new[] { "K:Where does Bexor live?", "Bexor lives in Tulmar.\nWhere does Bexor live?" }, ScriptedChatClient.Of(reader).Calls.Select(c => c.Prompt));
        Assert.Equal(3, r.GetTrace().Count(t => t.Role == "knowledge"));

        // exclude_self: the answerer writes no card.
        var kc2 = await MethodHarness.CreateAsync(new KnowledgeCardMethod(), [a, b, reader], $$"""{"answerer": "reader", "exclude_self": true, "prompts": {{prompts}}}""");
        var r2 = await kc2.Chat.GetResponseAsync(Q("q"));
        Assert.Equal(2, r2.GetTrace().Count(t => t.Role == "knowledge"));
        Assert.DoesNotContain(r2.GetTrace(), t => t.Role == "knowledge" && t.Model == "reader");
    }

    [Fact]
    public async Task Knowledge_card_likelihood_relevance_keeps_the_card_that_makes_the_question_likely()
    {
        // The answerer's token model has read texts in which "Bexor?" follows "Tulmar.": that card makes the question likelier.
        var tokens = new TableTokenModel("reader", ["Tulmar.\nBexor?", "soup.\nKugir?"], order: 4);
        var reader = ScriptedChatClient.Model("reader", (p, _, _) => Task.FromResult(p.StartsWith("K:") ? "-" : p), tokens);
        var a = ScriptedChatClient.Model("a", c => "soup.");
        var b = ScriptedChatClient.Model("b", c => "Tulmar.");
        var prompts = Prompts(("knowledge", "K:{question}"), ("answer_with_knowledge", "{knowledge_inline}"));
        var kc = await MethodHarness.CreateAsync(new KnowledgeCardMethod(), [a, b, reader], $$"""{"answerer": "reader", "relevance": "likelihood", "relevance_top_k": 1, "prompts": {{prompts}}}""");
        var r = await kc.Chat.GetResponseAsync(Q("Bexor?"));
        Assert.Equal("Tulmar.", r.Text);
        Assert.Single(r.GetTrace(), t => t.Role == "relevance");
        // Likelihood needs the answerer's token access: checked before work.
        var e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new KnowledgeCardMethod(), [a.Descriptor, b.Descriptor], """{"answerer": "a", "relevance": "likelihood"}"""));
        Assert.Contains("needs token access from the answerer 'a'", e.Message);
    }

    private static readonly string Blend = Prompts(("answer", "{question}"), ("rank_pair", "P:{candidate_a}|{candidate_b}"), ("rank_list", "L:{candidates_inline}"), ("fuse", "F:{candidates_inline}"));

    [Fact]
    public async Task Blender_compares_every_pair_in_both_orders_and_fuses_the_top_k()
    {
        var a = ScriptedChatClient.Model("a", c => "good");
        var b = ScriptedChatClient.Model("b", c => "better");
        var c = ScriptedChatClient.Model("c", c => "best");
        int Rank(string s) => s switch { "good" => 1, "better" => 2, _ => 3 };
        var judge = ScriptedChatClient.Model("judge", call =>
        {
            if (call.Prompt.StartsWith("F:")) return "fused " + call.Prompt[2..];
            if (!call.Prompt.StartsWith("P:")) return "-";
            var parts = call.Prompt[2..].Split('|');
            return Rank(parts[0]) >= Rank(parts[1]) ? "A" : "B";
        });
        var blender = await MethodHarness.CreateAsync(new LlmBlenderMethod(), [a, b, c, judge], $$"""{"top_k": 2, "ranker_model_name": "judge", "fuser_model_name": "judge", "prompts": {{Blend}}}""");
        var r = await blender.Chat.GetResponseAsync(Q("q"));
        var pairs = ScriptedChatClient.Of(judge).Calls.Where(x => x.Prompt.StartsWith("P:")).Select(x => x.Prompt).Order().ToList();
        // Three candidates that say something (the judge's own "-" is no candidate): 3 x 2 ordered pairs.
        Assert.Equal(new[] { "P:best|better", "P:best|good", "P:better|best", "P:better|good", "P:good|best", "P:good|better" }, pairs);
        Assert.Equal("fused best | better", r.Text);
        Assert.All(ScriptedChatClient.Of(judge).Calls.Where(x => x.Prompt.StartsWith("P:")), x => Assert.Equal(128, x.Options!.MaxOutputTokens));
    }

    [Fact]
    public async Task Blender_a_ranker_that_always_prefers_the_first_position_learns_nothing_in_both_orders()
    {
        var a = ScriptedChatClient.Model("a", c => c.Prompt.StartsWith("F:") ? c.Prompt : c.Prompt.StartsWith("P:") ? "A" : "x");
        var b = ScriptedChatClient.Model("b", c => "y");
        var blender = await MethodHarness.CreateAsync(new LlmBlenderMethod(), [a, b], $$"""{"top_k": 2, "prompts": {{Blend}}}""");
        var r = await blender.Chat.GetResponseAsync(Q("q"));
        var ranking = (System.Collections.IEnumerable)r.GetTrace().Single(t => t.Role == "round 2 / fuse").Data!["ranking"]!;
        var wins = ranking.Cast<Dictionary<string, object?>>().Select(d => (double)d["wins"]!).ToList();
        // "A" for (x, y) and "A" for (y, x): one win each, so config order decides.
        Assert.Equal(new[] { 1.0, 1.0 }, wins);
        Assert.Equal("F:x | y", r.Text);
    }

    [Fact]
    public async Task Blender_listwise_ranking_makes_one_ranker_call_and_reads_json_scores()
    {
        var a = ScriptedChatClient.Model("a", c => "low");
        var b = ScriptedChatClient.Model("b", c => "high");
        var judge = ScriptedChatClient.Model("judge", call => call.Prompt.StartsWith("L:") ? """{"scores": [2, 9, 0]}""" : call.Prompt.StartsWith("F:") ? call.Prompt : "meh");
        var blender = await MethodHarness.CreateAsync(new LlmBlenderMethod(), [a, b, judge], $$"""{"ranking": "listwise", "top_k": 1, "ranker": "judge", "fuser": "judge", "prompts": {{Blend}}}""");
        var r = await blender.Chat.GetResponseAsync(Q("q"));
        Assert.Single(ScriptedChatClient.Of(judge).Calls, x => x.Prompt.StartsWith("L:"));
        Assert.Equal("F:high", r.Text);
        Assert.Equal(new[] { 2.0, 9.0, 0.0 }, LlmBlenderMethod.ListScores("""{"scores": [2, 9]} x""", "", ["a", "b", "c"]));
        Assert.Equal(new[] { 0.0, 1.0 }, LlmBlenderMethod.ListScores("b", "b", ["a", "b"]));
    }

    [Theory]
    [InlineData("""{"top_k": 4}""", "'top_k' = 4 is more than the 3 candidates")]
    [InlineData("""{"train_ranker_on_dev": true}""", "'train_ranker_on_dev' = true is not supported")]
    [InlineData("""{"ranker_model_name": "Qwen/Qwen2.5-7B-Instruct"}""", "is not a member")]
    [InlineData("""{"ranking": "pointwise"}""", "valid: pairwise, listwise")]
    public void Blender_bad_input_is_an_error_before_work(string hyperparameters, string expected)
    {
        var members = new[] { "a", "b", "c" }.Select(n => ScriptedChatClient.Model(n, _ => "x").Descriptor).ToList();
        var e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new LlmBlenderMethod(), members, hyperparameters));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Blender_reads_labels_or_a_repeated_answer_as_the_preference()
    {
        Assert.Equal(1, LlmBlenderMethod.Preference("A", "a", "x", "y"));
        Assert.Equal(-1, LlmBlenderMethod.Preference("Answer B is better.", "answer b is better", "x", "y"));
        Assert.Equal(-1, LlmBlenderMethod.Preference(" Tulmar", "tulmar", "zorla", "tulmar"));
        Assert.Equal(0, LlmBlenderMethod.Preference("both are fine", "both are fine", "x", "y"));
    }

    private static readonly string Moa = Prompts(("propose", "P:{question}"), ("propose_with_references", "R:{references_inline}"), ("aggregate", "G:{references_inline}"));

    [Fact]
    public async Task Moa_layers_see_the_previous_layer_and_the_aggregator_the_last()
    {
        ConsortModel M(string name) => ScriptedChatClient.Model(name, c => c.Prompt.StartsWith("G:") ? "agg " + c.Prompt[2..] : $"{name}{c.Number}");
        var a = M("a"); var b = M("b"); var g = M("g");
        var moa = await MethodHarness.CreateAsync(new MixtureOfAgentsMethod(), [a, b, g], $$"""{"layers": 2, "proposers": ["a", "b"], "aggregator": "g", "prompts": {{Moa}}}""");
        var r = await moa.Chat.GetResponseAsync(Q("q"));
        Assert.Equal(new[] { "P:q", "R:a1 | b1" }, ScriptedChatClient.Of(a).Calls.Select(c => c.Prompt));
        Assert.Equal(new[] { "P:q", "R:a1 | b1" }, ScriptedChatClient.Of(b).Calls.Select(c => c.Prompt));
        Assert.Equal("agg a2 | b2", r.Text);
        Assert.Equal(new[] { "round 0 / propose", "round 1 / propose_with_references", "aggregate" }, r.GetTrace().Select(t => t.Role).Distinct());
    }

    [Fact]
    public async Task Moa_streams_the_aggregator_first_piece_before_it_has_finished()
    {
        var gate = new TaskCompletionSource();
        var agg = new ConsortModel(new ModelDescriptor { Name = "g", Access = ModelAccess.Text }, new GatedStream(gate.Task));
        var a = ScriptedChatClient.Model("a", c => "1");
        var moa = await MethodHarness.CreateAsync(new MixtureOfAgentsMethod(), [a, agg], $$"""{"layers": 1, "proposers": ["a"], "aggregator": "g", "prompts": {{Moa}}}""");
        await using var e = moa.Chat.GetStreamingResponseAsync(Q("q")).GetAsyncEnumerator();
        Assert.True(await e.MoveNextAsync());
        Assert.Equal("first", e.Current.Text);
        Assert.False(gate.Task.IsCompleted); // the aggregator is still writing
        gate.SetResult();
        var rest = new List<ChatResponseUpdate> { e.Current };
        while (await e.MoveNextAsync()) rest.Add(e.Current);
        var response = rest.ToChatResponse();
        Assert.Equal("first second", response.Text);
        var trace = ConsortResponseExtensions.ReadTrace(rest[^1].AdditionalProperties);
        Assert.Equal(new[] { "round 0 / propose", "aggregate" }, trace.Select(t => t.Role));
        Assert.Equal(trace.Sum(t => t.InputTokens), response.Usage!.InputTokenCount);
    }

    /// <summary>A chat client that streams "first", then waits for the gate, then " second".</summary>
    private sealed class GatedStream(Task gate) : IChatClient
    {
        public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
            throw new NotSupportedException();

        public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
            [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            yield return new ChatResponseUpdate(ChatRole.Assistant, "first");
            await gate.WaitAsync(cancellationToken);
            yield return new ChatResponseUpdate(ChatRole.Assistant, " second");
            yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(new UsageDetails { InputTokenCount = 5, OutputTokenCount = 2 })]) { FinishReason = ChatFinishReason.Stop };
        }

        public object? GetService(Type serviceType, object? serviceKey = null) => null;
        public void Dispose() { }
    }
}
