using System.Text.Json.Nodes;
using Consort.LlamaCpp;
using Consort.Testing;
using Xunit.Abstractions;

namespace Consort.Cli.Tests.Safety;

/// <summary>
/// The crash-proof first load: a native abort in llama.cpp kills only the probe child, the parent reports the file
/// and llama.cpp's last message; verdicts are cached; run carries on with its other runs and serve refuses the model.
/// </summary>
public sealed class ProbeTests(ITestOutputHelper output)
{
    private static string Crash(string name) => Path.Combine(TestPaths.Shared, "fuzz-crashes", "gguf", name);

    [Theory]
    [InlineData("f32_ttype_4.gguf", "SIGSEGV", null)]                        // I32 matrix: segfault at first decode
    [InlineData("q8_tok_7.gguf", "SIGABRT", "id_to_token.size() == token_to_id.size()")]
    [InlineData("f32_hparam_12.gguf", "SIGABRT", "n_expert_used > 0")]
    [InlineData("q8_tstruct_5.gguf", "SIGABRT", "binary_op: unsupported types")]
    public void NativeAbortInTheChildBecomesOneClearError(string file, string signal, string? message)
    {
        // Without the managed validation (which refuses these files first), llama.cpp really dies: in the child only.
        var (ok, error, cacheable) = LlamaProbe.RunChild(CliHarness.Dll, Crash(file), validate: false);
        output.WriteLine(error);
        Assert.False(ok);
        Assert.True(cacheable);
        Assert.Contains("llama.cpp crashed", error);
        Assert.Contains(signal, error);
        if (message is not null) Assert.Contains(message, error);
        Assert.DoesNotContain('\n', error);
    }

    [Fact]
    public async Task FirstUseProbesInAChildAndTheSecondUsesTheCachedVerdict()
    {
        using var tmp = new TempDir();
        var env = new Dictionary<string, string> { ["CONSORT_CACHE"] = tmp.File("cache") };
        var first = await MeasuredCli.RunAsync(env, "probe", "--isolated", TestPaths.TinyStories656K);
        var second = await MeasuredCli.RunAsync(env, "probe", "--isolated", TestPaths.TinyStories656K);
        Assert.True(first.Code == 0, first.ToString());
        Assert.True(second.Code == 0, second.ToString());
        var a = JsonNode.Parse(first.Out.Trim())!;
        var b = JsonNode.Parse(second.Out.Trim())!;
        Assert.True((bool)a["ok"]! && (bool)a["isolated"]!);
        Assert.False((bool)a["cached"]!);
        Assert.True((bool)b["cached"]!);
        double firstMs = (double)a["ms"]!, cachedMs = (double)b["ms"]!;
        output.WriteLine($"probe of {Path.GetFileName(TestPaths.TinyStories656K)}: first {firstMs:F0} ms (child process), cached {cachedMs:F1} ms (whole CLI: {first.Elapsed.TotalMilliseconds:F0} vs {second.Elapsed.TotalMilliseconds:F0} ms)");
        Assert.True(cachedMs < firstMs, $"the cached verdict ({cachedMs} ms) should cost less than probing ({firstMs} ms)");
        Assert.Single(Directory.GetFiles(Path.Combine(tmp.File("cache"), "probe")));
    }

    [Fact]
    public void ChangingTheFileInvalidatesItsVerdict()
    {
        using var tmp = new TempDir();
        var copy = tmp.File("m.gguf");
        File.Copy(TestPaths.Stories260K, copy);
        string before = LlamaProbe.Identity(copy);
        File.SetLastWriteTimeUtc(copy, DateTime.UtcNow.AddMinutes(-5));
        Assert.NotEqual(before, LlamaProbe.Identity(copy));
        Assert.Contains(copy, before);
        Assert.Contains(new FileInfo(copy).Length.ToString(), before);
    }

    /// <summary>Two runs over copies of one model; the first copy is recorded as killing llama.cpp (as a probe would record it).</summary>
    private static (string Config, string Cache) PoisonedPool(TempDir tmp)
    {
        File.Copy(TestPaths.Stories260K, tmp.File("poisoned.gguf"));
        File.Copy(TestPaths.Stories260K, tmp.File("fine.gguf"));
        string cache = tmp.File("cache");
        LlamaProbe.Record(tmp.File("poisoned.gguf"), ok: false, "llama.cpp crashed on it (SIGABRT, exit 134) in the first-load probe, so it is not loaded: GGML_ASSERT(test) failed", cache);
        var path = CliHarness.WriteStoryDataset(tmp.Path, 2);
        File.WriteAllText(tmp.File("run.json"), new JsonObject
        {
            ["task"] = new JsonObject { ["dataset"] = path, ["prompt"] = "{input}", ["max_tokens"] = 4 },
            ["baselines"] = true,
            ["models"] = new JsonArray(new JsonObject { ["name"] = "poisoned", ["path"] = "poisoned.gguf" }, new JsonObject { ["name"] = "fine", ["path"] = "fine.gguf" }),
        }.ToJsonString());
        return (tmp.File("run.json"), cache);
    }

    [Fact]
    public async Task RunReportsTheFailedRunAndCarriesOnWithTheOthers()
    {
        using var tmp = new TempDir();
        var (config, cache) = PoisonedPool(tmp);
        var r = await MeasuredCli.RunAsync(new Dictionary<string, string> { ["CONSORT_CACHE"] = cache }, "run", config, "--out", tmp.File("out"));
        output.WriteLine(r.ToString());
        Assert.Equal(1, r.Code);
        Assert.Contains("run 'poisoned' failed", r.Err);
        Assert.Contains("poisoned.gguf: llama.cpp crashed on it", r.Err);
        Assert.DoesNotContain("internal:", r.Err);
        Assert.Equal(2, CliHarness.Results(tmp.File("out/fine")).Count); // the other run ran
        Assert.False(File.Exists(tmp.File("out/poisoned/results.jsonl")));
    }

    [Fact]
    public async Task ServeRefusesTheModelAtStart()
    {
        using var tmp = new TempDir();
        var (_, cache) = PoisonedPool(tmp);
        File.WriteAllText(tmp.File("serve.json"), """{"models": [{"name": "poisoned", "path": "poisoned.gguf"}]}""");
        var r = await MeasuredCli.RunAsync(new Dictionary<string, string> { ["CONSORT_CACHE"] = cache }, "serve", tmp.File("serve.json"), "--urls", $"http://127.0.0.1:{TestNet.FreePort()}");
        MeasuredCli.AssertClearError(r, mentions: "poisoned.gguf: llama.cpp crashed on it", maxSeconds: 30);
    }
}
