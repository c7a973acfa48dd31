using System.Text.Json.Nodes;
using Consort.Testing;

namespace Consort.Cli.Tests;

public class InspectAndBenchTests
{
    [Fact]
    public async Task InspectReportsArchitectureVocabularyAndCapabilities()
    {
        var (code, stdout, stderr) = await CliHarness.RunAsync("inspect", TestPaths.Stories260K, "--json");
        Assert.True(code == 0, stderr);
        var j = JsonNode.Parse(stdout)!;
        Assert.Equal("llama", j["architecture"]!.GetValue<string>());
        Assert.Equal(5, j["layers"]!.GetValue<int>());
        Assert.Equal(512, j["vocabulary"]!["size"]!.GetValue<int>());
        Assert.InRange(j["parameters"]!.GetValue<long>(), 200_000, 400_000);
        Assert.Contains("full logits", j["capabilities"]!.AsArray().Select(c => c!.GetValue<string>()));
    }

    [Fact]
    public async Task InspectOfADamagedFileIsAOneLineError()
    {
        using var dir = new TempDir();
        var bytes = File.ReadAllBytes(TestPaths.Stories260K);
        File.WriteAllBytes(dir.File("cut.gguf"), bytes[..(bytes.Length / 3)]);
        var (code, _, stderr) = await CliHarness.RunAsync("inspect", dir.File("cut.gguf"));
        Assert.Equal(1, code);
        Assert.StartsWith("error: ", stderr.Trim());
        Assert.Contains("cut.gguf", stderr);
        Assert.Contains("truncated", stderr);
    }

    [Fact]
    public async Task BenchDecodeMeasuresSinglesAndFusedInOneRun()
    {
        var (code, stdout, stderr) = await CliHarness.RunAsync("bench", "decode", "--tokens", "16", "--repeats", "1", "--json",
            "--model-a", TestPaths.Stories260K, "--model-b", TestPaths.Llama2Xs);
        Assert.True(code == 0, stderr + stdout);
        var j = JsonNode.Parse(stdout)!;
        var runs = j["runs"]!.AsArray();
        Assert.Equal(3, runs.Count);
        Assert.All(runs, r => Assert.True(r!["tokens_per_second"]!.GetValue<double>() > 0));
        double a = runs[0]!["seconds"]!.GetValue<double>(), b = runs[1]!["seconds"]!.GetValue<double>(), f = runs[2]!["seconds"]!.GetValue<double>();
        // The printed seconds are rounded (a 16-token decode takes milliseconds): the ratio agrees within that rounding.
        double ratio = j["ratio_fused_to_sum"]!.GetValue<double>();
        Assert.InRange(ratio / (f / (a + b)), 0.95, 1.05);
    }
}
