using System.Text.Json.Nodes;
using Consort.Config;
using Consort.LlamaCpp;
using Consort.Methods;
using Consort.Methods.Api;
using Consort.Testing;
using Microsoft.Extensions.AI;
using Xunit.Abstractions;

namespace Consort.Tests.Methods.Api.Routing;

/// <summary>trained_router's lm router: protocol with a scripted trainer and router model; a real fine-tune of zoo:base.</summary>
public class LmRouterTests(ITestOutputHelper output)
{
    // math answers additions, geo capitals: each right only on its own.
    private static ConsortModel[] Experts() =>
    [
        ScriptedChatClient.Model("math", c => c.Prompt.Contains('+') ? "4" : "?"),
        ScriptedChatClient.Model("geo", c => c.Prompt.Contains("capital") ? "Paris" : "?"),
    ];

    private static TestFitData Dev() => TestFitData.FromPairs(Enumerable.Range(0, 4).SelectMany(_ => new[] { ("2+2=", "4"), ("the capital of France?", "Paris"), ("hello?", "x") }));

    /// <summary>Records what it was taught and writes a placeholder file; the loader below answers as the taught router would.</summary>
    private sealed class Host(string basePath) : IServiceProvider, IAnswerModelTrainer, IModelReferences, IModelLoader
    {
        public List<AnswerTrainingRequest> Trained { get; } = [];
        public List<string> Loaded { get; } = [];
        public Func<string, string> Router { get; set; } = p => p.Contains('+') ? " math" : p.Contains("capital") ? " geo" : " ???";
        public object? GetService(Type t) => t.IsInstanceOfType(this) ? this : null;
        public Task<AnswerTrainingResult> TrainAsync(AnswerTrainingRequest r, CancellationToken ct)
        {
            Trained.Add(r);
            File.WriteAllText(r.OutputPath, "gguf stand-in");
            return Task.FromResult(new AnswerTrainingResult(r.Steps, 0.1, 0));
        }
        public ModelSpec Parse(JsonNode reference, string baseDirectory, string where) => new GgufModelSpec("base", (string)reference!, basePath, new JsonObject());
        public ModelDescriptor Describe(ModelSpec spec) => new() { Name = spec.Name, Access = ModelAccess.Text };
        public Task<ConsortModel> LoadAsync(ModelSpec spec, CancellationToken ct = default)
        {
            Loaded.Add(((GgufModelSpec)spec).Path);
            return Task.FromResult(ScriptedChatClient.Model(spec.Name, c => Router(c.Prompt)));
        }
    }

    private static Task<ConsortModel> Create(Host host, string hyperparameters, IFitData? dev, List<string>? log = null, string? baseDirectory = null) =>
        MethodHarness.CreateAsync(new TrainedRouterMethod(), Experts(), hyperparameters, dev, loader: host, services: host, log: log is null ? null : log.Add, baseDirectory: baseDirectory);

    [Fact]
    public async Task The_router_model_is_taught_the_best_members_name_after_each_query_and_its_answer_routes()
    {
        using var dir = new TempDir();
        var host = new Host(dir.File("base.gguf"));
        File.WriteAllText(dir.File("base.gguf"), "x");
        using var c = await Create(host, """{"router": "lm", "lm_steps": 7}""", Dev());
        var taught = Assert.Single(host.Trained);
        Assert.Equal(7, taught.Steps);
        Assert.Equal(dir.File("base.gguf"), taught.BasePath);
        Assert.Contains(("2+2=\nmodel:", " math"), taught.Pairs);
        Assert.Contains(("the capital of France?\nmodel:", " geo"), taught.Pairs);
        // Nobody answers "hello?": a tie teaches the best dev member (math, the first of two equals).
        Assert.Contains(("hello?\nmodel:", " math"), taught.Pairs);
        Assert.Equal(taught.OutputPath, Assert.Single(host.Loaded));

        var r = await c.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "the capital of Italy?")]);
        Assert.Equal("Paris", r.Text);
        Assert.Equal("geo", r.GetAnsweredBy());
        Assert.Equal(["route", "answer"], r.GetTrace().Select(t => t.Role));
        Assert.Equal("geo", r.GetTrace()[0].Data!["chosen"]);
        Assert.Equal("the capital of Italy?\nmodel:", r.GetTrace()[0].Input);

        // A name the router does not write: the best dev member answers and the trace says so.
        var f = await c.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "what?")]);
        Assert.Equal(true, f.GetTrace()[0].Data!["fallback"]);
        Assert.Equal("math", f.GetAnsweredBy());
        c.Dispose();
        Assert.False(File.Exists(taught.OutputPath)); // without router_path the fine-tuned file is temporary
    }

    [Fact]
    public async Task A_saved_lm_router_is_reused_without_training_and_refused_for_other_members()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("base.gguf"), "x");
        var host = new Host(dir.File("base.gguf"));
        var hp = """{"router": "lm", "router_path": "lm.gguf"}""";
        (await Create(host, hp, Dev(), baseDirectory: dir.Path)).Dispose();
        Assert.True(File.Exists(dir.File("lm.gguf")) && File.Exists(dir.File("lm.gguf.json")));
        var log = new List<string>();
        using (var again = await Create(host, hp, null, log, dir.Path))
            Assert.Equal("math", (await again.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "1+1=")])).GetAnsweredBy());
        Assert.Single(host.Trained);
        Assert.Contains(log, l => l.Contains("loaded the lm router"));

        var others = new[] { ScriptedChatClient.Model("math", _ => "?"), ScriptedChatClient.Model("history", _ => "?") };
        var e = await Assert.ThrowsAsync<ConfigException>(() => MethodHarness.CreateAsync(new TrainedRouterMethod(), others, hp, null, loader: host, services: host, baseDirectory: dir.Path));
        Assert.Contains("belongs to other models", e.Message);
        Assert.Contains("history", e.Message);
    }

    [Theory]
    [InlineData("""{"router": "lm", "threshold": 0.1}""", "threshold")]
    [InlineData("""{"router": "lm", "strong_share": 0.5}""", "strong_share")]
    [InlineData("""{"router": "lm", "lm_steps": 0}""", "lm_steps")]
    [InlineData("""{"router": "lmm"}""", "knn, mlp, mf, sw_ranking, lm")]
    public void Bad_lm_options_fail_before_work(string hyperparameters, string key)
    {
        var e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new TrainedRouterMethod(), Experts().Select(m => m.Descriptor).ToList(), hyperparameters, hasDev: true, name: "r"));
        Assert.Contains("run 'r' (method trained_router)", e.Message);
        Assert.Contains(key, e.Message);
    }

    [Fact]
    public void A_missing_base_model_fails_before_work()
    {
        var e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new TrainedRouterMethod(), Experts().Select(m => m.Descriptor).ToList(),
            """{"router": "lm", "router_base_model": "/nowhere/base.gguf"}""", hasDev: true, name: "r", services: HostServices.Default));
        Assert.Contains("router_base_model", e.Message);
        Assert.Contains("not found", e.Message);
    }

    [Fact]
    public async Task On_the_zoo_a_few_dozen_steps_from_base_teach_the_router_to_name_the_arithmetic_expert_for_additions()
    {
        using var session = new ModelSession { Services = HostServices.Default };
        using var arith = LlamaModelFactory.Load(new LlamaModelOptions { Path = Consort.Training.Zoo.ResolveModel("zoo:arith"), Name = "arith" });
        using var facts = LlamaModelFactory.Load(new LlamaModelOptions { Path = Consort.Training.Zoo.ResolveModel("zoo:facts_a"), Name = "facts_a" });
        var task = Consort.Evaluation.EvalTask.Create(new JsonObject
        {
            ["dataset"] = Path.Combine(TestPaths.RepoRoot, "zoo", "datasets", "mixed.json"), ["prompt"] = "{input}", ["max_tokens"] = 16, ["stop"] = new JsonArray("\n"),
        }, Consort.Evaluation.EvalDataset.DefaultSearchFolders(TestPaths.RepoRoot));
        var dev = task.BuildFitData("dev");
        var log = new List<string>();
        using var router = await MethodHarness.CreateAsync(new TrainedRouterMethod(), [arith, facts], """{"router": "lm", "lm_steps": 30, "dev_size": 24}""", dev,
            loader: session, services: HostServices.Default, log: log.Add);
        output.WriteLine(Assert.Single(log, l => l.Contains("fine-tuned from zoo:base")));
        var test = task.BuildFitData("test").Sample(24, 7);
        int right = 0, additions = 0;
        foreach (var ex in test.Where(e => e.Group == "arith"))
        {
            additions++;
            var r = await router.Chat.GetResponseAsync(ex.Messages, task.BuildChatOptions());
            if (r.GetAnsweredBy() == "arith") right++;
        }
        output.WriteLine($"{right} of {additions} additions routed to arith");
        Assert.True(additions > 0);
        Assert.True(right * 2 > additions, $"{right} of {additions} additions routed to arith");
    }
}
