using System.Text.Json.Nodes;
using Consort.Config;
using Consort.Testing;

namespace Consort.Tests.Config;

public class RunConfigTests
{
    private static RunConfig Parse(string json, string? dir = null) =>
        RunConfig.Parse(JsonNode.Parse(json)!.AsObject(), dir ?? TestPaths.RepoRoot, "test");

    private static string Stories => TestPaths.Stories260K.Replace("\\", "/");
    private static string Xs => TestPaths.Llama2Xs.Replace("\\", "/");

    [Fact]
    public void AcceptsMoCoConfigs()
    {
        var c = Parse($$"""
            { "method": "api_cascade", "task": "agieval_tiny", "task_type": "multiple_choice", "gpu_ids": [0, 1],
              "model_names": ["{{Stories}}", "{{Xs}}"],
              "hyperparameters": { "max_response_length": 64, "temperature": 0.7, "top_p": 0.9, "batch_size": 32, "thresholds": [0.3] } }
            """);
        var run = Assert.Single(c.Runs);
        var spec = Assert.IsType<CollaborationSpec>(run.Model);
        Assert.Equal("api_cascade", spec.Method);
        Assert.Equal(2, spec.Members.Count);
        Assert.Equal("multiple_choice", c.Task!["task_type"]!.GetValue<string>());
        using var session = new ModelSession();
        var d = session.Describe(spec); // aliases, common hyperparameters and capabilities all check out
        Assert.Equal(ModelAccess.Text, d.Access);
    }

    [Fact]
    public void RelativeGgufPathsResolveAgainstTheConfigFolder()
    {
        using var dir = new TempDir();
        File.Copy(TestPaths.Stories260K, dir.File("m.gguf"));
        File.WriteAllText(dir.File("c.json"), """{ "method": "single_model", "task": "gsm8k", "models": ["m.gguf"] }""");
        var c = RunConfig.Load(dir.File("c.json"));
        var spec = Assert.IsType<GgufModelSpec>(c.Runs[0].Model);
        Assert.Equal(dir.File("m.gguf"), spec.Path);
        Assert.Equal("m", spec.Name);
    }

    [Theory]
    [InlineData("""{ "method": "single_model", "models": ["x.gguf"], "modle": 1 }""", "unknown key 'modle'", "valid keys")]
    [InlineData("""{ "method": "majority_vot", "models": ["x.gguf"] }""", "unknown method 'majority_vot'", "majority_vote")]
    [InlineData("""{ "method": "single_model", "models": [42] }""", "models[0]", "string or an object")]
    [InlineData("""{ "method": "single_model", "models": ["Qwen/Qwen2.5-7B-Instruct"] }""", "Hugging Face model id", "hf:Qwen/Qwen2.5-7B-Instruct/FILE.gguf")]
    [InlineData("""{ "method": "single_model", "models": [{ "path": "a.gguf", "ctx": 5 }] }""", "unknown key 'ctx'", "context_size")]
    [InlineData("""{ "hyperparameters": { "k": 1 } }""", "without a 'method'", "")]
    public void BadConfigsGetOneClearMessage(string json, string expected, string hint)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(json));
        Assert.Contains(expected, e.Message);
        Assert.Contains(hint, e.Message);
    }

    [Fact]
    public void InvalidJsonNamesFileAndLine()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("bad.json"), "{\n  \"method\": \"single_model\",\n  \"models\": [\n}");
        var e = Assert.Throws<ConfigException>(() => RunConfig.Load(dir.File("bad.json")));
        Assert.Contains("bad.json", e.Message);
        Assert.Contains("line 4", e.Message);
    }

    [Fact]
    public void MissingModelFileIsNamed()
    {
        var c = Parse("""{ "method": "single_model", "task": "gsm8k", "models": ["nowhere/missing.gguf"] }""");
        using var session = new ModelSession();
        var e = Assert.Throws<ConfigException>(() => session.Describe(c.Runs[0].Model));
        Assert.Contains("missing.gguf", e.Message);
        Assert.Contains("not found", e.Message);
    }

    [Fact]
    public void TokenLevelFusionOfDifferentVocabulariesIsRefusedBeforeLoading()
    {
        var c = Parse($$"""{ "method": "logit_fusion", "task": "gsm8k", "models": ["{{Stories}}", "{{TestPaths.TinyStories656K}}"] }""");
        using var session = new ModelSession();
        var e = Assert.Throws<ConfigException>(() => session.Describe(c.Runs[0].Model));
        Assert.Contains("logit_fusion", e.Message);
        Assert.Contains("stories260K", e.Message);
        Assert.Contains("TinyStories-656K-Q8_0", e.Message);
        Assert.Contains("vocabulary", e.Message);
    }

    [Fact]
    public void MissingCapabilityNamesMethodModelAndWhatIsNeeded()
    {
        var c = Parse("""
            { "method": "cascade", "task": "gsm8k",
              "models": [ { "name": "textonly", "type": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m", "top_logprobs": 0 }, "{{X}}" ],
              "hyperparameters": { "thresholds": [0.5] } }
            """.Replace("{{X}}", Stories));
        using var session = new ModelSession();
        var e = Assert.Throws<ConfigException>(() => session.Describe(c.Runs[0].Model));
        Assert.Contains("cascade", e.Message);
        Assert.Contains("'textonly'", e.Message);
        Assert.Contains("token distributions", e.Message);
    }

    [Fact]
    public void UnknownHyperparameterListsValidOnes()
    {
        var c = Parse($$"""{ "method": "majority_vote", "task": "gsm8k", "models": ["{{Stories}}"], "hyperparameters": { "sample": 3 } }""");
        using var session = new ModelSession();
        var e = Assert.Throws<ConfigException>(() => session.Describe(c.Runs[0].Model));
        Assert.Contains("unknown hyperparameter 'sample'", e.Message);
        Assert.Contains("samples", e.Message);
    }

    [Fact]
    public void SuitesComparePoolModelsAndCollaborationsAndNest()
    {
        var c = Parse($$"""
            { "task": "gsm8k", "baselines": true,
              "models": [ { "name": "a", "path": "{{Stories}}" }, { "name": "b", "path": "{{Xs}}" } ],
              "runs": [ { "name": "vote", "method": "majority_vote" },
                        { "name": "nested", "method": "majority_vote", "models": [ "a", { "name": "casc", "method": "cascade", "models": ["a", "b"], "hyperparameters": { "thresholds": [0.2] } } ] } ] }
            """);
        Assert.Equal(["a", "b", "vote", "nested"], c.Runs.Select(r => r.Name));
        var nested = Assert.IsType<CollaborationSpec>(c.Runs[3].Model);
        Assert.Same(c.Models[0], nested.Members[0]);
        Assert.IsType<CollaborationSpec>(nested.Members[1]);
        using var session = new ModelSession();
        foreach (var r in c.Runs) session.Describe(r.Model);
    }

    [Fact]
    public async Task BuildsRealModelsOnceAndComposesCollaborations()
    {
        var c = Parse($$"""
            { "task": "gsm8k", "models": [ { "name": "a", "path": "{{Stories}}" } ],
              "runs": [ { "name": "v1", "method": "majority_vote", "hyperparameters": { "samples": 1, "max_tokens": 4 } },
                        { "name": "v2", "method": "majority_vote", "models": ["a", "a"], "hyperparameters": { "samples": 1, "max_tokens": 4 } } ] }
            """);
        using var session = new ModelSession();
        var v1 = await session.BuildAsync(c.Runs[0].Model);
        var v2 = await session.BuildAsync(c.Runs[1].Model);
        Assert.Same(v1.Members[0], v2.Members[0]);
        Assert.Same(v2.Members[0], v2.Members[1]);
        var r = await v2.Chat.GetResponseAsync([new Microsoft.Extensions.AI.ChatMessage(Microsoft.Extensions.AI.ChatRole.User, "Once upon a time")]);
        Assert.Equal(2, r.GetTrace().Count);
    }

    [Fact]
    public void ASweepBecomesOneRunPerValueAndIsRememberedAsOneGroup()
    {
        var c = Parse($$"""
            { "task": "gsm8k", "baselines": true, "models": [{"name": "g", "path": "{{Stories}}"}, {"name": "m", "path": "{{Xs}}"}],
              "runs": [{ "name": "nudge", "method": "nudging", "hyperparameters": {"max_tokens": 4}, "sweep": {"gamma": [0.2, 0.5]} }] }
            """);
        Assert.Equal(["g", "m", "nudge@gamma=0.2", "nudge@gamma=0.5"], c.Runs.Select(r => r.Name));
        var spec = Assert.IsType<CollaborationSpec>(c.Runs[3].Model);
        Assert.Equal(0.5, (double)spec.Hyperparameters["gamma"]!);
        Assert.Equal(4, (int)spec.Hyperparameters["max_tokens"]!);
        var g = Assert.Single(c.Sweeps);
        Assert.Equal(("nudge", "gamma"), (g.Name, g.Key));
        Assert.Equal([(0.2, "nudge@gamma=0.2"), (0.5, "nudge@gamma=0.5")], g.Points);
        Assert.Equal(["g", "m"], g.Members);
        // Top level too.
        var top = Parse($$"""{ "method": "co_llm", "task": "gsm8k", "models": ["{{Stories}}", "{{Xs}}"], "sweep": {"deferral_threshold": [0.3]} }""");
        Assert.Equal("test@deferral_threshold=0.3", Assert.Single(top.Runs).Name);
    }

    [Theory]
    [InlineData("""{"gamma": 0.2}""", "'sweep' must be an object naming one hyperparameter")]
    [InlineData("""{"gamma": [0.2], "top_k": [1]}""", "'sweep' must be an object naming one hyperparameter")]
    [InlineData("""{"gamma": []}""", "sweep 'gamma' needs 1 to")]
    [InlineData("""{"gamma": ["low"]}""", "sweep 'gamma' values must be numbers")]
    [InlineData("""{"gamma": [0.2, 0.2]}""", "lists 0.2 twice")]
    [InlineData("""{"max_tokens": [4]}""", "'max_tokens' is both a hyperparameter and swept")]
    public void ABadSweepIsOneClearError(string sweep, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => Parse($$"""
            { "task": "gsm8k", "models": ["{{Stories}}", "{{Xs}}"],
              "runs": [{ "name": "nudge", "method": "nudging", "hyperparameters": {"max_tokens": 4}, "sweep": {{sweep}} }] }
            """));
        Assert.Contains("runs[0]", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void ASweptValueOutOfRangeFailsInTheMethodsOwnCheckNamingTheRun()
    {
        var c = Parse($$"""{ "method": "nudging", "task": "gsm8k", "models": ["{{Stories}}", "{{Xs}}"], "sweep": {"gamma": [0.5, 1.5]} }""");
        using var session = new ModelSession();
        session.Describe(c.Runs[0].Model);
        var e = Assert.Throws<ConfigException>(() => session.Describe(c.Runs[1].Model));
        Assert.Contains("test@gamma=1.5", e.Message);
        Assert.Contains("'gamma'", e.Message);
        Assert.Contains("[0, 1]", e.Message);
    }
}
