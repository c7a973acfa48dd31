using Consort.LlamaCpp;
using Consort.Methods;
using Consort.Methods.Api;
using Consort.Testing;
using Microsoft.Extensions.AI;
using Xunit.Abstractions;

namespace Consort.Tests.Methods.Api;

/// <summary>mentor_collab: table-driven models for the protocol (the mentor's patch chosen), real models for the turns.</summary>
public class MentorCollabTests(ITestOutputHelper output)
{
    // The generator prefers its dog but, asked to choose, answers "B" (its corpus ends judge prompts with "(B").
    private static ConsortModel Generator(string choice = "B") =>
        new TableTokenModel("gen", ["q: hi a: the dog ran far", $"x: my choice: option ({choice}"], alphabet: " abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789?.:+=(),\n").AsModel();
    // Another alphabet, so another tokenizer.
    private static ConsortModel Mentor() => new TableTokenModel("mentor", ["q: hi a: the cat sat down"], alphabet: " abcdefghijklmnopqrstuvwxyz:,().").AsModel();

    private static ChatMessage[] Ask(string q) => [new(ChatRole.User, q)];
    private static readonly ChatOptions Greedy = new() { Temperature = 0, MaxOutputTokens = 16 };

    private static IReadOnlyList<Dictionary<string, object?>> Spans(ChatResponse r) => (IReadOnlyList<Dictionary<string, object?>>)r.GetTrace()[0].Data!["spans"]!;

    [Fact]
    public async Task At_a_divergence_the_generator_judges_and_the_mentors_patch_is_kept()
    {
        var (g, m) = (Generator(), Mentor());
        using var c = await MethodHarness.CreateAsync(new MentorCollabMethod(), [g, m], """{"decision_proportion": 100, "patch_size": 8}""");
        var r = await c.Chat.GetResponseAsync(Ask("q: hi a:"), Greedy);
        var data = r.GetTrace()[0].Data!;
        var decisions = (List<Dictionary<string, object?>>)data["decisions"]!;
        Assert.NotEmpty(decisions);
        var first = decisions[0];
        Assert.Equal(" dog ran", first["generator"]);   // both drafted from the same text (" the")
        Assert.Equal(" cat sat", first["mentor"]);
        Assert.Equal("mentor", first["chosen"]);
        Assert.StartsWith(" the cat sat", r.Text);
        Assert.Equal(["gen", "mentor"], Spans(r).Take(2).Select(s => (string)s["model"]!));
        Assert.True(Convert.ToInt32(data["mentor_chosen"]) >= 1);
    }

    [Fact]
    public async Task A_judge_that_answers_A_keeps_its_own_patch_and_a_proportion_of_zero_never_asks()
    {
        var m = Mentor();
        using var keep = await MethodHarness.CreateAsync(new MentorCollabMethod(), [Generator("A"), m], """{"decision_proportion": 100, "patch_size": 8}""");
        var r = await keep.Chat.GetResponseAsync(Ask("q: hi a:"), Greedy);
        Assert.Equal("gen", ((List<Dictionary<string, object?>>)r.GetTrace()[0].Data!["decisions"]!)[0]["chosen"]);
        Assert.StartsWith(" the dog ran", r.Text);

        var g = Generator();
        var alone = (await g.Chat.GetResponseAsync(Ask("q: hi a:"), Greedy)).Text;
        using var never = await MethodHarness.CreateAsync(new MentorCollabMethod(), [g, m], """{"decision_proportion": 0}""");
        var n = await never.Chat.GetResponseAsync(Ask("q: hi a:"), Greedy);
        Assert.Equal(alone, n.Text);
        Assert.Empty((List<Dictionary<string, object?>>)n.GetTrace()[0].Data!["decisions"]!);
    }

    [Fact]
    public async Task A_judge_question_that_does_not_fit_the_context_keeps_the_generators_patch_and_says_so()
    {
        var small = new TableTokenModel("gen", ["q: hi a: the dog ran far", "x: my choice: option (B"], contextSize: 60,
            alphabet: " abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789?.:+=(),\n").AsModel();
        using var c = await MethodHarness.CreateAsync(new MentorCollabMethod(), [small, Mentor()], """{"decision_proportion": 100, "patch_size": 8}""");
        var r = await c.Chat.GetResponseAsync(Ask("q: hi a:"), Greedy);
        var first = ((List<Dictionary<string, object?>>)r.GetTrace()[0].Data!["decisions"]!)[0];
        Assert.Equal("gen", first["chosen"]);
        Assert.Contains("does not fit", (string)first["judged"]!);
        Assert.StartsWith(" the dog ran", r.Text);
    }

    /// <summary>A stand-in for the generator's hidden states: whether the text so far already holds "dog".</summary>
    private sealed class DogFeature : IEmbeddingSources, IServiceProvider, IEmbeddingGenerator<string, Embedding<float>>
    {
        public int Calls;
        public object? GetService(Type serviceType) => serviceType.IsInstanceOfType(this) ? this : null;
        public Task<(IEmbeddingGenerator<string, Embedding<float>> Generator, string Identity)> CreateAsync(System.Text.Json.Nodes.JsonNode? spec, string baseDirectory, CancellationToken ct) =>
            Task.FromResult(((IEmbeddingGenerator<string, Embedding<float>>)this, "dog"));
        public Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null, CancellationToken ct = default)
        {
            Interlocked.Increment(ref Calls);
            return Task.FromResult(new GeneratedEmbeddings<Embedding<float>>(values.Select(v => new Embedding<float>(new float[] { v.Contains("dog") ? 1 : 0, 0.5f }))));
        }
        public object? GetService(Type serviceType, object? serviceKey) => null;
        public void Dispose() { }
    }

    // Dev: the same question, scored by whether the answer mentions the word the test rewards.
    private static TestFitData Rewarding(string word) => new(Enumerable.Range(0, 3).Select(i =>
        new FitExample($"d{i}", Ask("q: hi a:"), word, o => o.Contains(word) ? 1 : 0, o => o) { Options = Greedy }));

    [Fact]
    public async Task In_mode_train_a_classifier_trained_on_dev_picks_the_mentors_patch_where_the_judge_would_not()
    {
        // The judge answers "A" (its own patch), but on dev the mentor's "cat" patch is what scores: the classifier learns it.
        var log = new List<string>();
        var features = new DogFeature();
        using var c = await MethodHarness.CreateAsync(new MentorCollabMethod(), [Generator("A"), Mentor()],
            """{"mode": "train", "decision_proportion": 100, "patch_size": 8, "embedding": "fake"}""", Rewarding("cat"), services: features, log: log.Add);
        Assert.Contains(log, l => l.Contains("classifier trained on") && l.Contains("where the mentor's patch scored better"));
        int trainingCalls = features.Calls;
        Assert.True(trainingCalls >= 3, $"{trainingCalls} feature calls while training"); // one per labelled divergence point
        var r = await c.Chat.GetResponseAsync(Ask("q: hi a:"), Greedy);
        var first = ((List<Dictionary<string, object?>>)r.GetTrace()[0].Data!["decisions"]!)[0];
        Assert.Equal("classifier", first["judged"]);
        Assert.True((double)first["p_mentor_better"]! > 0.5);
        Assert.Equal("mentor", first["chosen"]);
        Assert.StartsWith(" the cat sat", r.Text);
        Assert.True(features.Calls > trainingCalls); // consulted at test time
    }

    [Fact]
    public async Task In_mode_train_a_classifier_that_learned_the_generators_patch_is_better_keeps_it_where_the_judge_would_not()
    {
        // The judge answers "B" (the mentor's), but on dev the generator's "dog" patch is what scores.
        var log = new List<string>();
        using var c = await MethodHarness.CreateAsync(new MentorCollabMethod(), [Generator("B"), Mentor()],
            """{"mode": "train", "decision_proportion": 100, "patch_size": 8, "embedding": "fake"}""", Rewarding("dog"), services: new DogFeature(), log: log.Add);
        var r = await c.Chat.GetResponseAsync(Ask("q: hi a:"), Greedy);
        var first = ((List<Dictionary<string, object?>>)r.GetTrace()[0].Data!["decisions"]!)[0];
        Assert.Equal("classifier", first["judged"]);
        Assert.Equal("gen", first["chosen"]);
        Assert.StartsWith(" the dog ran", r.Text);
    }

    [Fact]
    public async Task On_real_models_mode_train_learns_from_the_generators_own_hidden_states_and_is_consulted()
    {
        using var g = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, Name = "stories260k", ContextSize = 512 });
        using var x = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Llama2Xs, Name = "llama2xs" });
        string[] prompts = ["Once upon a time, there was a little boy named Tim.", "One day, Lily went to the park with her mom.", "Sue had a small cat.", "Ben liked to play with his ball."];
        var story = new ChatOptions { MaxOutputTokens = 32, Temperature = 0 };
        // Dev: an answer scores when it mentions a friend, a common word in these stories.
        var dev = new TestFitData(prompts.Select((p, i) => new FitExample($"d{i}", Ask(p), "friend", o => o.Contains("friend") || o.Contains("happy") ? 1 : 0, o => o) { Options = story }));
        var log = new List<string>();
        using var c = await MethodHarness.CreateAsync(new MentorCollabMethod(), [g, x], """{"mode": "train", "decision_proportion": 50, "patch_size": 8}""", dev,
            services: Consort.Embeddings.EmbeddingSources.Default, log: log.Add);
        var trained = Assert.Single(log, l => l.Contains("classifier trained on"));
        output.WriteLine(trained);
        var decisions = new List<Dictionary<string, object?>>();
        foreach (var p in prompts[..2])
            decisions.AddRange((List<Dictionary<string, object?>>)(await c.Chat.GetResponseAsync(Ask(p), story)).GetTrace()[0].Data!["decisions"]!);
        Assert.NotEmpty(decisions);
        Assert.All(decisions, d => Assert.Equal("classifier", d["judged"]));
        Assert.All(decisions, d => Assert.InRange((double)d["p_mentor_better"]!, 0, 1));
        output.WriteLine($"{decisions.Count} divergences at test, mentor kept at {decisions.Count(d => (string?)d["chosen"] == "llama2xs")}");
    }

    [Theory]
    [InlineData("""{"mode": "train"}""", false, "free")]
    [InlineData("""{"decision_proportion": 101}""", false, "decision_proportion")]
    [InlineData("""{"mode": "train", "embedding": "x"}""", false, "needs a task with a dev split")]
    [InlineData("""{"mode": "train"}""", true, "has no local weights")]
    [InlineData("""{"mode": "train", "embedding": "x", "mlp_threshold": 2}""", true, "mlp_threshold")]
    [InlineData("""{"mode": "trained"}""", true, "free, train")]
    [InlineData("""{"mode": "train", "embedding": 5}""", true, "'embedding'")]
    public void Bad_input_is_refused_before_work(string hyperparameters, bool hasDev, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new MentorCollabMethod(), [Generator().Descriptor, Mentor().Descriptor], hyperparameters, hasDev));
        Assert.Contains(expected, e.Message);
        Assert.Contains("mentor_collab", e.Message);
    }

    [Fact]
    public async Task On_real_models_both_write_patches()
    {
        using var g = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, Name = "stories260k", ContextSize = 512 });
        using var x = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Llama2Xs, Name = "llama2xs" });
        using var c = await MethodHarness.CreateAsync(new MentorCollabMethod(), [g, x], """{"decision_proportion": 50, "patch_size": 8}""");
        string[] prompts = ["Once upon a time, there was a little boy named Tim.", "One day, Lily went to the park with her mom.", "Sue had a small cat."];
        var rs = new List<ChatResponse>();
        foreach (var p in prompts) rs.Add(await c.Chat.GetResponseAsync(Ask(p), new ChatOptions { MaxOutputTokens = 48, Temperature = 0 }));
        var decisions = rs.SelectMany(r => (List<Dictionary<string, object?>>)r.GetTrace()[0].Data!["decisions"]!).ToList();
        int mentorKept = decisions.Count(d => (string?)d["chosen"] == "llama2xs");
        output.WriteLine($"stories260k + llama2xs mentor, 3 prompts x 48 tokens: {decisions.Count} divergences, mentor's patch kept {mentorKept}; first: {rs[0].Text}");
        Assert.NotEmpty(decisions);
        Assert.Contains(rs, r => Spans(r).Select(s => s["model"]).Distinct().Count() == 2);
    }
}
