using System.Text.Json.Nodes;
using Consort.Config;
using Consort.LlamaCpp;
using Consort.Methods.Weight;
using Consort.Testing;
using Microsoft.Extensions.AI;

namespace Consort.Weights.Tests;

public class WeightMergeMethodTests
{
    private static async Task<string> Greedy(ConsortModel m) =>
        (await m.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "Once upon a time")], new ChatOptions { Temperature = 0, MaxOutputTokens = 24 })).Text;

    [Fact]
    public async Task MergesMembersAndRunsTheMergedModel()
    {
        using var dir = new TempDir();
        using var a = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, Name = "a" });
        using var b = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, Name = "b" });
        var hp = new JsonObject
        {
            ["merge_method"] = "linear",
            ["model_parameters"] = new JsonArray(new JsonObject { ["weight"] = 0.25 }, new JsonObject { ["weight"] = 0.75 }),
            ["output"] = dir.File("m.gguf"),
        };
        using var loader = new ModelSession();
        using var merged = await MethodHarness.CreateAsync(new WeightMergeMethod(), [a, b], hp.ToJsonString(), name: "soup", loader: loader, baseDirectory: dir.Path);
        Assert.Equal("soup", merged.Name);
        Assert.Equal("weight_merge", merged.Method);
        Assert.Equal(2, merged.Members.Count);
        Assert.True(File.Exists(dir.File("m.gguf")));
        Assert.NotNull(merged.Tokens);
        var text = await Greedy(merged);
        Assert.False(string.IsNullOrWhiteSpace(text));
        Assert.Equal(await Greedy(a), text); // 0.25 x + 0.75 x == x: the same story
    }

    [Fact]
    public async Task ConfigFileAndCacheAndErrors()
    {
        using var dir = new TempDir();
        var copy = dir.File("ft.gguf");
        File.Copy(TestPaths.Stories260K, copy);
        File.WriteAllText(dir.File("m.yml"), $"""
            merge_method: ties
            base_model: {TestPaths.Stories260K}
            models:
              - model: ft.gguf
                parameters: {"{"}weight: 1.0, density: 0.5{"}"}
            dtype: float16
            """);
        using var a = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, Name = "a" });
        var cache = dir.File("cache");
        Environment.SetEnvironmentVariable("CONSORT_CACHE", cache);
        try
        {
            using var loader = new ModelSession();
            Task<ConsortModel> Build() => MethodHarness.CreateAsync(new WeightMergeMethod(), [a], """{"config": "m.yml"}""", name: "ties", loader: loader, baseDirectory: dir.Path);
            using (var m = await Build())
                Assert.False(string.IsNullOrWhiteSpace(await Greedy(m)));
            var files = Directory.GetFiles(Path.Combine(cache, "merges"), "*.gguf");
            Assert.Single(files);
            var stamp = File.GetLastWriteTimeUtc(files[0]);
            using (var again = await Build())
                Assert.Equal(stamp, File.GetLastWriteTimeUtc(files[0])); // reused, not merged again

            // Checked when the config is validated, before any merge.
            var e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new WeightMergeMethod(), [a.Descriptor],
                """{"merge_method": "ties", "model_parameters": [{"weight": 1}, {}]}"""));
            Assert.Contains("model_parameters has 2 entries for 1 models", e.Message);
        }
        finally { Environment.SetEnvironmentVariable("CONSORT_CACHE", null); }
    }
}
