using System.Diagnostics;
using System.Text.Json.Nodes;
using Consort.Testing;
using Consort.Weights.Config;

namespace Consort.Cli.Tests;

/// <summary><c>consort merge-evolve</c>: CMA-ES over zoo merges with a zoo task as fitness, killed mid-search and resumed.</summary>
public class MergeEvolveTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    private string Config()
    {
        var zoo = Path.Combine(TestPaths.RepoRoot, "zoo");
        var yml = _dir.File("evolve.yml");
        File.WriteAllText(yml, $"""
            genome:
              models:
                - {zoo}/arith.gguf
                - {zoo}/facts_a.gguf
              merge_method: task_arithmetic
              base_model: {zoo}/base.gguf
              layer_granularity: 2
            tasks:
              - name: zoo:arith
            limit: 40
            """);
        return yml;
    }

    [Fact]
    public async Task KilledSearchResumesWithoutRepeatingEvaluationsAndWritesARecipeThatMerges()
    {
        var yml = Config();
        var storage = _dir.File("storage");
        string[] args = ["merge-evolve", yml, "--storage-path", storage, "--max-fevals", "16", "--population", "4", "--random-seed", "3", "--concurrency", "1"];
        var log = Path.Combine(storage, "evaluations.jsonl");
        int Lines() => File.Exists(log) ? File.ReadAllLines(log).Count(l => l.Length > 0) : 0;

        int killed;
        // Kill the first run in its second generation (after at least five evaluations).
        using (var p = Process.Start(CliHarness.StartInfo(args))!)
        {
            var watch = Stopwatch.StartNew();
            while (!p.HasExited && Lines() < 5 && watch.Elapsed < TimeSpan.FromMinutes(4)) await Task.Delay(20);
            // The message is built only when the search has ended: reading the streams of a running child waits for its end.
            if (p.HasExited) Assert.Fail("the search ended before it could be killed: " + await p.StandardOutput.ReadToEndAsync() + await p.StandardError.ReadToEndAsync());
            int atKill = Lines();
            killed = p.Id;
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
            Assert.True(Lines() <= 15, $"{Lines()} evaluations after the kill ({atKill} when it was sent, after {watch.Elapsed.TotalSeconds:F1} s; exit code {p.ExitCode})");
        }
        int before = Lines();
        Assert.InRange(before, 5, 15);

        var (code, stdout, stderr) = await CliHarness.RunAsync(args);
        Assert.True(code == 0, stdout + stderr);
        Assert.Contains($"resuming at generation {before / 4} ({before} evaluations logged)", stdout);
        var lines = File.ReadAllLines(log).Where(l => l.Length > 0).Select(l => JsonNode.Parse(l)!).ToList();
        var keys = lines.Select(l => (l["generation"]!.GetValue<int>(), l["index"]!.GetValue<int>())).ToList();
        Assert.Equal(16, keys.Count);                                   // nothing evaluated twice ...
        Assert.Equal(keys.Distinct().Order(), Enumerable.Range(0, 4).SelectMany(g => Enumerable.Range(0, 4).Select(i => (g, i))).Order()); // ... nothing skipped
        Assert.All(lines, l => Assert.Null(l["error"]?.GetValue<string>()));
        var state = JsonNode.Parse(File.ReadAllText(Path.Combine(storage, "state.json")))!;
        Assert.Equal(4, state["cma"]!["Generation"]!.GetValue<int>());
        Assert.Equal(lines.Max(l => l["fitness"]!.GetValue<double>()), state["best"]!["fitness"]!.GetValue<double>());

        // The best recipe is mergekit YAML that consort merge runs; no candidate was left in tmpfs.
        var best = Path.Combine(storage, "best_config.yaml");
        var c = MergeConfig.Load(best);
        Assert.Equal("task_arithmetic", c.MergeMethod);
        Assert.Equal(2, c.Slices!.Count); // 4 layers in groups of 2
        (code, stdout, stderr) = await CliHarness.RunAsync("merge", best, "--out", _dir.File("best.gguf"));
        Assert.True(code == 0, stdout + stderr);
        Assert.True(File.Exists(_dir.File("best.gguf")));
        // The killed search's candidate was swept when the resumed one started; the resumed one removed its own.
        if (Directory.Exists("/dev/shm"))
        {
            Assert.Empty(Directory.GetDirectories("/dev/shm", $"consort-evolve-{killed}-*"));
            Assert.All(Directory.GetDirectories("/dev/shm", "consort-evolve-*"), d => Assert.True(Alive(int.Parse(Path.GetFileName(d).Split('-')[2])), d + " outlived its search"));
        }

        // Another config in the same storage is refused.
        File.AppendAllText(yml, "\nrandom_init: true\n");
        (code, _, stderr) = await CliHarness.RunAsync(args);
        Assert.Equal(1, code);
        Assert.Contains("holds a search of another config", stderr);
    }

    private static bool Alive(int pid)
    {
        try { using var p = Process.GetProcessById(pid); return true; }
        catch (ArgumentException) { return false; }
    }

    [Fact]
    public async Task BadEvolveConfigsAreOneLineErrors()
    {
        var yml = _dir.File("bad.yml");
        File.WriteAllText(yml, "genome:\n  models: [a.gguf]\n  merge_method: karcher\ntasks: [zoo:arith]\n");
        var (code, _, err) = await CliHarness.RunAsync("merge-evolve", yml, "--storage-path", _dir.File("s"));
        Assert.Equal(1, code);
        Assert.Contains("cannot be evolved", err);
        File.WriteAllText(yml, $"genome:\n  models: [{TestPaths.Stories260K}]\n  merge_method: linear\n  layer_granularity: 2\ntasks: [zoo:arith]\n");
        (code, _, err) = await CliHarness.RunAsync("merge-evolve", yml, "--storage-path", _dir.File("s"));
        Assert.Contains("layer_granularity 2 must divide the models' 5 layers", err);
    }
}
