using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Consort.Testing;

namespace Consort.Cli.Tests;

/// <summary>train's input and output checks (before any training), dtype words, windows that fit the pairs; the README's merge commands.</summary>
public class TrainAndMergeCliTests
{
    // Prompt/answer pairs of ~90 bytes, like the reading-from-context experiment's.
    private static string LongPairs(TempDir dir)
    {
        var items = new JsonArray();
        for (int i = 0; i < 40; i++)
            items.Add(new JsonObject
            {
                ["id"] = $"p{i}",
                ["input"] = $"Knowledge: Person{i:00} lives in Town{i % 7}, a quiet place near the old river. Q: Where does Person{i:00} live? A:",
                ["output"] = $"Town{i % 7}",
            });
        var path = dir.File("pairs.json");
        File.WriteAllText(path, new JsonObject { ["task_type"] = "exact_match", ["dev"] = items, ["test"] = items.DeepClone() }.ToJsonString());
        return path;
    }

    [Fact]
    public async Task TrainRefusesBadInputsAndOutputsBeforeTraining()
    {
        using var dir = new TempDir();
        var sw = Stopwatch.StartNew();
        // A multiple-choice set is not prompt/answer pairs.
        var (c1, _, e1) = await CliHarness.RunAsync("train", "--pairs", TestPaths.Dataset("mmlu_redux"), "--out", dir.File("m.gguf"));
        Assert.Equal(1, c1);
        Assert.Contains("multiple_choice", Assert.Single(e1.Trim().Split('\n')));
        Assert.DoesNotContain("Exception", e1);
        // An output folder that does not exist fails now, not after training.
        var (c2, o2, e2) = await CliHarness.RunAsync("train", "--pairs", "zoo:arith", "--from", "zoo:base", "--out", dir.File("missing/dir/m.gguf"));
        Assert.Equal(1, c2);
        Assert.Contains("does not exist", e2);
        Assert.DoesNotContain("step", o2);
        var (c3, _, e3) = await CliHarness.RunAsync("train", "--pairs", "zoo:arith", "--from", "zoo:base", "--out", dir.Path);
        Assert.Equal(1, c3);
        Assert.Contains("is a folder", e3);
        // The dtype words of convert and merge; what train cannot write is named.
        var (c4, _, e4) = await CliHarness.RunAsync("train", "--pairs", "zoo:arith", "--from", "zoo:base", "--type", "bfloat16", "--out", dir.File("m.gguf"));
        Assert.Equal(1, c4);
        Assert.Contains("train writes float16 (f16) or float32 (f32)", e4);
        // A window that cannot hold the pairs is refused when given, with the length that would.
        var pairs = LongPairs(dir);
        var (c5, o5, e5) = await CliHarness.RunAsync("train", "--pairs", pairs, "--from", "zoo:base", "--seq-len", "64", "--out", dir.File("m.gguf"));
        Assert.Equal(1, c5);
        Assert.Matches(@"error: --seq-len 64 cannot hold the longest pair \(\d+ tokens", e5.Trim());
        Assert.Contains("use --seq-len 112 or more", e5);
        Assert.DoesNotContain("step", o5);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(90), $"checks took {sw.Elapsed}");
    }

    [Fact]
    public async Task TrainChoosesAWindowThatHoldsThePairsAndAcceptsFloat16()
    {
        using var dir = new TempDir();
        var pairs = LongPairs(dir);
        var (code, stdout, stderr) = await CliHarness.RunAsync("train", "--pairs", pairs, "--from", "zoo:base", "--steps", "2", "--batch", "2",
            "--eval-every", "0", "--type", "float16", "--out", dir.File("m.gguf"));
        Assert.True(code == 0, stderr + stdout);
        Assert.Contains("--seq-len 112: the longest pair is", stdout);
        Assert.Contains("2x112 tokens", stdout);
        Assert.True(File.Exists(dir.File("m.gguf")));
    }

    [Fact]
    public async Task TheReadmeMergeCommandsRunOnAFreshClone()
    {
        // The commands of the README's weight-merging block, in order, as a user on a fresh clone types them.
        var readme = File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "README.md"));
        var section = readme[readme.IndexOf("## Weight merging", StringComparison.Ordinal)..];
        var block = Regex.Match(section, "```bash\n(.*?)```", RegexOptions.Singleline).Groups[1].Value;
        var commands = block.Split('\n').Select(l => l.Split('#')[0].Trim()).Where(l => l.StartsWith("./consort ", StringComparison.Ordinal)).ToList();
        Assert.Contains(commands, c => c.StartsWith("./consort merge", StringComparison.Ordinal));
        using var clone = new TempDir();
        // A fresh clone: the committed files only (no artifacts/ made by earlier commands), with ../shared beside it.
        foreach (var f in Directory.GetFiles(Path.Combine(TestPaths.RepoRoot, "examples"), "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(clone.Path, "repo", Path.GetRelativePath(TestPaths.RepoRoot, f));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(f, target);
        }
        var repo = Path.Combine(clone.Path, "repo");
        File.WriteAllText(Path.Combine(repo, "Consort.slnx"), "");
        Directory.CreateSymbolicLink(Path.Combine(repo, "zoo"), Path.Combine(TestPaths.RepoRoot, "zoo"));
        Directory.CreateSymbolicLink(Path.Combine(clone.Path, "shared"), TestPaths.Shared);
        foreach (var command in commands)
        {
            var args = command["./consort ".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var psi = CliHarness.StartInfo(args);
            psi.WorkingDirectory = repo;
            psi.Environment["CONSORT_ZOO"] = Path.Combine(TestPaths.RepoRoot, "zoo");
            using var p = Process.Start(psi)!;
            p.StandardInput.Close();
            var o = p.StandardOutput.ReadToEndAsync();
            var e = p.StandardError.ReadToEndAsync();
            await p.WaitForExitAsync();
            Assert.True(p.ExitCode == 0, $"{command}: {await e}{await o}");
        }
    }
}
