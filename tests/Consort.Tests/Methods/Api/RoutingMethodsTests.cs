using System.Text.Json.Nodes;
using Consort.Methods;
using Consort.Methods.Api;
using Consort.Testing;
using Microsoft.Extensions.AI;

namespace Consort.Tests.Methods.Api;

/// <summary>Embeddings from keywords: "+" -> x axis, "capital" -> y, else z (a deterministic stand-in for protocol tests).</summary>
internal sealed class KeywordEmbeddings : IEmbeddingSources, IServiceProvider, IEmbeddingGenerator<string, Embedding<float>>
{
    public int Calls;
    public object? GetService(Type serviceType) => serviceType.IsInstanceOfType(this) ? this : null;
    public Task<(IEmbeddingGenerator<string, Embedding<float>> Generator, string Identity)> CreateAsync(JsonNode? spec, string baseDirectory, CancellationToken ct) =>
        Task.FromResult(((IEmbeddingGenerator<string, Embedding<float>>)this, "keywords"));
    public Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null, CancellationToken ct = default)
    {
        Interlocked.Increment(ref Calls);
        return Task.FromResult(new GeneratedEmbeddings<Embedding<float>>(values.Select(v =>
            new Embedding<float>(v.Contains('+') ? new float[] { 1, 0.1f, 0 } : v.Contains("capital") ? [0.1f, 1, 0] : [0, 0.1f, 1]))));
    }
    public object? GetService(Type serviceType, object? serviceKey) => null;
    public void Dispose() { }
}

public class RoutingMethodsTests
{
    private static readonly string[] Names = ["math", "geo", "misc"];

    // math answers additions, geo capitals, misc everything else: each right only on its own.
    private static ConsortModel[] Experts() =>
    [
        ScriptedChatClient.Model("math", c => c.Prompt.Contains('+') ? "4" : "?"),
        ScriptedChatClient.Model("geo", c => c.Prompt.Contains("capital") ? "Paris" : "?"),
        ScriptedChatClient.Model("misc", c => c.Prompt.Contains("color") ? "blue" : "?"),
    ];

    private static TestFitData Dev() => TestFitData.FromPairs(Enumerable.Range(0, 6).SelectMany(_ => new[]
        { ("2+2=", "4"), ("the capital of France?", "Paris"), ("the color of the sky?", "blue") }));

    private static Task<ConsortModel> Create(ICollaborationMethod method, ConsortModel[] models, string hyperparameters, IFitData? dev, IServiceProvider? services = null, string? baseDirectory = null)
    {
        var (options, descriptor) = MethodHarness.Plan(method, models.Select(m => m.Descriptor).ToList(), hyperparameters, dev is not null, "r", baseDirectory: baseDirectory);
        return method.CreateAsync(new MethodContext { Name = "r", Models = models, Options = options, Descriptor = descriptor, Dev = dev, Services = services, BaseDirectory = baseDirectory });
    }

    private static Task<ChatResponse> Ask(ConsortModel m, string q) => m.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, q)]);

    [Fact]
    public async Task PromptRoutingSendsMoCosPromptToTheRouterAndTheQueryToTheMemberItNames()
    {
        var models = Experts();
        var router = ScriptedChatClient.Model("router", c => "I pick 2.");
        var all = models.Append(router).ToArray();
        var m = await Create(new PromptRoutingMethod(), all,
            """{"model_descriptions": ["adds numbers", "knows capitals", "knows colors", "routes"], "router_model": "router"}""", null);
        var r = await Ask(m, "the capital of France?");
        Assert.Equal("Paris", r.Text);
        var routed = ScriptedChatClient.Of(router).Calls.Single();
        Assert.Equal("You are an AI assistant that routes user questions to the most suitable AI model based on their descriptions.\n\n" +
                     "User question: the capital of France?\n\nModel descriptions:\n- 1: adds numbers\n- 2: knows capitals\n- 3: knows colors\n- 4: routes\n\n" +
                     "Based on the above descriptions, which model is best suited to answer the user's question? Respond with the model number only.", routed.Prompt);
        Assert.Equal("the capital of France?", ScriptedChatClient.Of(models[1]).Calls.Single().Prompt);
        Assert.Empty(ScriptedChatClient.Of(models[0]).Calls);
        Assert.Equal(["router", "geo"], r.GetTrace().Select(t => t.Model));
        Assert.Equal("geo", r.GetTrace()[0].Data!["chosen"]);
    }

    [Fact]
    public async Task PromptRoutingFallsBackToTheBestDevMemberWhenTheRouterNamesNoneAndSaysSo()
    {
        // geo is best on this dev set (capitals only); the router (geo itself, the best) answers nonsense.
        var models = Experts();
        var dev = TestFitData.FromPairs(Enumerable.Range(0, 4).Select(_ => ("the capital of Spain?", "Paris")));
        var m = await Create(new PromptRoutingMethod(), models, """{"model_descriptions": ["adds", "capitals", "colors"]}""", dev);
        var r = await Ask(m, "2+2=");
        Assert.Equal("?", r.Text);                      // geo answered: the fallback
        var trace = r.GetTrace();
        Assert.Equal(["geo", "geo"], trace.Select(t => t.Model));
        Assert.Equal(true, trace[0].Data!["fallback"]);
        Assert.Equal("answer (fallback)", trace[1].Role);
    }

    [Theory]
    [InlineData("""{"model_descriptions": ["a", "b"]}""", "has 2 description(s) for 3 members (math, geo, misc)")]
    [InlineData("""{}""", "'model_descriptions' is required")]
    [InlineData("""{"model_descriptions": ["a", "b", "c"], "router_model": "nobody"}""", "names 'nobody', which is not a member")]
    public void PromptRoutingRefusesBadInputBeforeWork(string hyperparameters, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new PromptRoutingMethod(), Experts().Select(m => m.Descriptor).ToList(), hyperparameters, hasDev: true));
        Assert.Contains(expected, e.Message);
        Assert.Contains("method prompt_routing", e.Message);
    }

    [Fact]
    public void ApiPromptRoutingIsPromptRoutingNotTheLikelihoodRouter()
    {
        Assert.Equal("prompt_routing", MethodRegistry.Get("api_prompt_routing").Metadata.Name);
        Assert.DoesNotContain("api_prompt_routing", MethodRegistry.Get("likelihood_router").Metadata.Aliases);
    }

    [Theory]
    [InlineData("knn")]
    [InlineData("mlp")]
    [InlineData("mf")]
    [InlineData("sw_ranking")]
    public async Task TrainedRouterLearnsFromDevOutcomesAndRoutesEachQueryToItsExpert(string kind)
    {
        var models = Experts();
        var emb = new KeywordEmbeddings();
        var m = await Create(new TrainedRouterMethod(), models, $$"""{"router": "{{kind}}", "epochs": 200, "learning_rate": 0.01}""", Dev(), emb);
        foreach (var m0 in models) Assert.Equal(18, ScriptedChatClient.Of(m0).Calls.Count); // every member answered every dev example once
        Assert.Equal("4", (await Ask(m, "3+1=")).Text);
        Assert.Equal("Paris", (await Ask(m, "the capital of Italy?")).Text);
        var r = await Ask(m, "the color of grass?");
        Assert.Equal("blue", r.Text);
        Assert.Equal("misc", r.GetAnsweredBy());
        Assert.Equal(kind, r.GetTrace()[0].Data!["router"]);
    }

    [Fact]
    public async Task TrainedRouterIsSavedAndReusedAndAFileForOtherModelsIsRefused()
    {
        using var dir = new TempDir();
        var emb = new KeywordEmbeddings();
        var hp = """{"router": "knn", "router_path": "r.json"}""";
        await Create(new TrainedRouterMethod(), Experts(), hp, Dev(), emb, dir.Path);
        Assert.True(File.Exists(dir.File("r.json")));
        var fresh = Experts();
        var reused = await Create(new TrainedRouterMethod(), fresh, hp, Dev(), emb, dir.Path);
        Assert.All(fresh, x => Assert.Empty(ScriptedChatClient.Of(x).Calls)); // no retraining: no dev calls
        Assert.Equal("Paris", (await Ask(reused, "the capital of Peru?")).Text);
        var others = new[] { ScriptedChatClient.Model("x", _ => "?"), ScriptedChatClient.Model("y", _ => "?"), ScriptedChatClient.Model("z", _ => "?") };
        var e = await Assert.ThrowsAsync<ConfigException>(() => Create(new TrainedRouterMethod(), others, hp, Dev(), emb, dir.Path));
        Assert.Contains("trained for models [math, geo, misc], the members here are [x, y, z]", e.Message);
    }

    [Fact]
    public async Task StrongShareCalibratesTheThresholdToTheTargetShareOfStrongCalls()
    {
        // "misc" is priced highest: the strong member. Half of the dev queries should go to it.
        var models = new[]
        {
            ScriptedChatClient.Model("math", c => c.Prompt.Contains('+') ? "4" : "?", pricePerMillion: 1),
            ScriptedChatClient.Model("geo", c => c.Prompt.Contains("capital") ? "Paris" : "?", pricePerMillion: 1),
            ScriptedChatClient.Model("misc", c => c.Prompt.Contains("color") ? "blue" : c.Prompt.Contains('+') ? "4" : "?", pricePerMillion: 5),
        };
        var logs = new List<string>();
        var (options, descriptor) = MethodHarness.Plan(new TrainedRouterMethod(), models.Select(m => m.Descriptor).ToList(), """{"router": "knn", "strong_share": 0.5}""", true, "r");
        var m = await new TrainedRouterMethod().CreateAsync(new MethodContext { Name = "r", Models = models, Options = options, Descriptor = descriptor, Dev = Dev(), Services = new KeywordEmbeddings(), Log = logs.Add });
        Assert.Contains(logs, l => l.Contains("sends 50% of dev queries to 'misc'"));
    }

    [Theory]
    [InlineData("""{"cost_weight": -1}""", "cost_weight")]
    [InlineData("""{"strong_share": 1.5}""", "strong_share")]
    [InlineData("""{"router": "forest"}""", "knn")]
    [InlineData("""{"model_descriptions": ["one"]}""", "has 1 description(s) for 3 members")]
    [InlineData("""{"embedding": 5}""", "embedding")]
    public void TrainedRouterRefusesBadInputBeforeWork(string hyperparameters, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new TrainedRouterMethod(), Experts().Select(m => m.Descriptor).ToList(), hyperparameters, hasDev: true));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public async Task GraphRoutingLearnsOnTheQueryModelGraph()
    {
        var models = Experts();
        var m = await Create(new GraphRoutingMethod(), models,
            """{"model_descriptions": ["adds numbers", "knows capitals", "knows colors"], "learning_rate": 0.01, "train_epochs": 150, "mask_samples": 4, "split_ratio": [0.7, 0.3, 0]}""",
            Dev(), new KeywordEmbeddings());
        Assert.Equal("4", (await Ask(m, "5+1=")).Text);
        Assert.Equal("Paris", (await Ask(m, "the capital of Chile?")).Text);
        Assert.Equal("graph", (await Ask(m, "the color of snow?")).GetTrace()[0].Data!["router"]);
    }

    [Theory]
    [InlineData("""{"model_descriptions": ["a"]}""", "has 1 description(s) for 3 members")]
    [InlineData("""{"model_descriptions": ["a", "b", "c"], "in_edges": 2}""", "in_edges")]
    [InlineData("""{"model_descriptions": ["a", "b", "c"], "scenario": "Fast"}""", "Performance First")]
    public void GraphRoutingRefusesBadInputBeforeWork(string hyperparameters, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new GraphRoutingMethod(), Experts().Select(m => m.Descriptor).ToList(), hyperparameters, hasDev: true));
        Assert.Contains(expected, e.Message);
    }
}
