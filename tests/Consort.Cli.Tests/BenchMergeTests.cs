namespace Consort.Cli.Tests;

/// <summary><c>consort bench merge</c>: one row per method on small generated models; bad options before any work.</summary>
public class BenchMergeTests
{
    [Fact]
    public async Task PrintsOneRowPerMethodWithRatioAndPeakMemory()
    {
        var (code, stdout, stderr) = await CliHarness.RunAsync("bench", "merge", "--mb", "16", "--cache", "warm", "--repeats", "1", "--methods", "ties,model_stock,karcher,passthrough");
        Assert.True(code == 0, stdout + stderr);
        Assert.Contains("generated 3 models x 1 tensors [2048, 4096] F16", stdout); // c only because model_stock needs two fine-tunes
        foreach (var (method, inputs) in new[] { ("ties", 2), ("model_stock", 3), ("karcher", 2), ("passthrough", 1) })
        {
            var row = stdout.Split('\n').Single(l => l.StartsWith($"| {method} |"));
            var cells = row.Split('|', StringSplitOptions.TrimEntries)[1..^1];
            Assert.Equal(inputs.ToString(), cells[1]);
            Assert.All(cells[2..7], c => Assert.True(double.Parse(c, System.Globalization.CultureInfo.InvariantCulture) >= 0, row));
            Assert.True(double.Parse(cells[3], System.Globalization.CultureInfo.InvariantCulture) > 0, row);
            // The write floor of the same output bytes, and the merge against it.
            Assert.Equal(10, cells.Length);
            Assert.True(double.Parse(cells[8], System.Globalization.CultureInfo.InvariantCulture) > 0, row);
            Assert.True(double.Parse(cells[9], System.Globalization.CultureInfo.InvariantCulture) > 0, row);
        }
        Assert.Contains("write of 17 MB", stdout); // one F16 tensor of 2048 x 4096 (16.8 MB) and its header
        // Each merge starts from a collected heap: what one method left behind is not counted in the next one's peak.
        var rss = System.Text.RegularExpressions.Regex.Matches(stdout, @"RSS (\d+) MB before, peak (\d+) MB")
            .Select(m => (Before: int.Parse(m.Groups[1].Value), Peak: int.Parse(m.Groups[2].Value))).ToList();
        Assert.Equal(4, rss.Count);
        Assert.All(rss, r => Assert.True(r.Peak >= r.Before && r.Before <= rss[0].Before + 48, stdout));
        Assert.Contains("targets: merge / read <= 3", stdout);
    }

    [Fact]
    public async Task UnknownMethodIsAOneLineError()
    {
        var (code, _, stderr) = await CliHarness.RunAsync("bench", "merge", "--mb", "16", "--methods", "ties,frankenstein");
        Assert.Equal(1, code);
        Assert.Contains("--methods: unknown merge method 'frankenstein'", stderr);
        Assert.DoesNotContain("   at ", stderr);
    }
}
