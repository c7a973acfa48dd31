using System.Text.Json.Nodes;
using Consort.Cli.Commands;
using Consort.Cli.Tests.Safety;
using Consort.Testing;

namespace Consort.Cli.Tests;

/// <summary>
/// Every input of ../shared/fuzz-crashes (found by mutation fuzzing; each one used to kill, hang or bloat the
/// process) run through the real CLI as a child process: each must end in a clear one-line error with an exit code
/// below 128, within 5 s and 500 MB, and leave no partial output.
/// </summary>
public sealed class FuzzCrashTests
{
    private static string Corpus(string sub) => Path.Combine(TestPaths.Shared, "fuzz-crashes", sub);

    private static TheoryData<string> Files(string sub, string pattern, bool folders = false)
    {
        var data = new TheoryData<string>();
        var dir = Corpus(sub);
        foreach (var f in (folders ? Directory.GetDirectories(dir) : Directory.GetFiles(dir, pattern)).Order(StringComparer.Ordinal)) data.Add(Path.GetFileName(f));
        return data;
    }

    public static TheoryData<string> GgufFiles => Files("gguf", "*.gguf");
    public static TheoryData<string> YamlFiles => Files("yaml", "*.yml");
    public static TheoryData<string> ConfigFiles => Files("config", "*.json");
    public static TheoryData<string> SafetensorsFolders => Files("safetensors", "", folders: true);

    // Probe verdicts for the shared models are kept across tests (as on a user's machine); the corrupt files never reach the probe.
    private static Dictionary<string, string> Env(TempDir tmp) => new() { ["CONSORT_CACHE"] = Path.Combine(TestPaths.RepoRoot, "artifacts", "test-cache") };

    /// <summary>What each GGUF file's message must name (the mutation the README lists).</summary>
    private static readonly Dictionary<string, string> GgufReasons = new()
    {
        ["f32_hparam_12.gguf"] = "expert", ["f32_tok_10.gguf"] = "empty", ["q8_tok_7.gguf"] = "unique",
        ["q8_alignment_3.gguf"] = "general.alignment", ["multiline_names.gguf"] = "dimensions",
        ["q8_tstruct_2.gguf"] = "Q8_1", ["q8_tstruct_5.gguf"] = "F16",
    };

    [Theory]
    [MemberData(nameof(GgufFiles))]
    public async Task CorruptGgufFailsClearlyInRun(string name)
    {
        using var tmp = new TempDir();
        string model = Path.Combine(Corpus("gguf"), name);
        File.WriteAllText(tmp.File("ds.json"), """{"task_type": "exact_match", "test": [{"id": "a", "input": "Once upon a time", "output": "x"}]}""");
        File.WriteAllText(tmp.File("run.json"), new JsonObject
        {
            ["method"] = "single_model",
            ["task"] = new JsonObject { ["dataset"] = tmp.File("ds.json"), ["prompt"] = "{input}", ["max_tokens"] = 8 },
            ["models"] = new JsonArray(model),
        }.ToJsonString());
        var r = await MeasuredCli.RunAsync(Env(tmp), "run", tmp.File("run.json"), "--limit", "1", "--out", tmp.File("out"));
        MeasuredCli.AssertClearError(r, mentions: name);
        Assert.Contains(GgufReasons.GetValueOrDefault(name, "I32"), r.Err);
        // Validation happens before any work: no run folder, no empty results.jsonl / run.json.
        Assert.False(Directory.Exists(tmp.File("out")), "a run that failed validation must leave nothing behind");
    }

    [Theory]
    [MemberData(nameof(GgufFiles))]
    public void InspectGivesTheLoadersVerdict(string name)
    {
        string path = Path.Combine(Corpus("gguf"), name);
        try
        {
            var report = InspectCommand.Inspect(path);
            Assert.False(report["valid"]!.GetValue<bool>(), $"{name} passed inspect: {report["verdict"]}");
            Assert.Contains(GgufReasons.GetValueOrDefault(name, "I32"), (string)report["verdict"]!);
        }
        catch (ModelFileException e)
        {
            // Unreadable files fail to open at all (the tensor name of multiline_names holds NULs and newlines).
            Assert.Contains(GgufReasons.GetValueOrDefault(name, "I32"), e.Message);
            Assert.True(e.Message.Length < 800, $"message of {e.Message.Length} characters");
            Assert.DoesNotContain('\0', e.Message);
            Assert.DoesNotContain('\n', e.Message);
        }
    }

    [Fact]
    public async Task InspectOfTheMultilineNamesFileIsOneShortLine()
    {
        using var tmp = new TempDir();
        var r = await MeasuredCli.RunAsync(Env(tmp), "inspect", Path.Combine(Corpus("gguf"), "multiline_names.gguf"));
        MeasuredCli.AssertClearError(r, mentions: "multiline_names.gguf");
        Assert.Single(r.ErrLines);
        Assert.True(r.Err.Length < 800, $"inspect printed {r.Err.Length} characters");
        Assert.Contains("characters)", r.Err);
    }

    [Theory]
    [MemberData(nameof(SafetensorsFolders))]
    public async Task ConvertRefusesWhatLlamaCppWouldAbortOn(string name)
    {
        using var tmp = new TempDir();
        var r = await MeasuredCli.RunAsync(Env(tmp), "convert", Path.Combine(Corpus("safetensors"), name), tmp.File("out.gguf"));
        string reason = name switch { "side_9" => "num_hidden_layers", "side_17" => "rms_norm_eps", _ => "vocabulary" };
        MeasuredCli.AssertClearError(r, mentions: reason);
        Assert.Empty(Directory.GetFiles(tmp.Path)); // no output, no temporary file
    }

    [Theory]
    [MemberData(nameof(YamlFiles))]
    public async Task MergeYamlBombsFailFast(string name)
    {
        using var tmp = new TempDir();
        var r = await MeasuredCli.RunAsync(Env(tmp), "merge", Path.Combine(Corpus("yaml"), name), "--out", tmp.File("out.gguf"));
        MeasuredCli.AssertClearError(r, mentions: name.StartsWith("alias") ? "alias" : "64 levels");
        Assert.False(File.Exists(tmp.File("out.gguf")));
    }

    [Theory]
    [MemberData(nameof(ConfigFiles))]
    public async Task ConfigValuesThatSizeWorkAreBounded(string name)
    {
        using var tmp = new TempDir();
        File.Copy(Path.Combine(Corpus("config"), name), tmp.File(name));
        var r = await MeasuredCli.RunAsync(Env(tmp), "run", tmp.File(name), "--limit", "1", "--out", tmp.File("out"));
        string key = name.StartsWith("threads") ? "'threads'" : "'samples'";
        MeasuredCli.AssertClearError(r, mentions: key); // checked before any model loads
        // The bound is named: Limits' "allowed: 1..N" (machine-derived) or OptionBinder's "valid: [1, N]" (method options).
        Assert.Matches(@"allowed: 1\.\.\d+|valid: \[1, \d+\]", r.Err);
    }
}
