using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Consort.Evaluation;
using Consort.Testing;

namespace Consort.Tests.Evaluation;

/// <summary>Runs a user can trust: fair subsets, resume that cannot lie, honest errors, nothing half-written, shards.</summary>
public sealed class TrustworthyRunTests
{
    private static string[] ZooFolders => [Path.Combine(TestPaths.RepoRoot, "zoo", "datasets")];

    private static EvalTask Mixed(JsonNode? config = null, int seed = 42) => EvalTask.Create(config ?? JsonValue.Create("mixed"), ZooFolders, seed);

    // Answers with the gold of the item whose prompt it sees (or a wrong number for items in `wrong`).
    private static ConsortModel Gold(EvalTask task, Func<string, bool>? wrong = null, string name = "gold")
    {
        var gold = task.Dataset.GetSplit("test").Concat(task.Dataset.GetSplit("dev")).GroupBy(i => task.PromptText(i))
            .ToDictionary(g => g.Key, g => (task.Type.Gold(g.First()), g.First().Key));
        return ScriptedChatClient.Model(name, async (prompt, _, ct) =>
        {
            await Task.Yield();
            var (g, key) = gold[prompt];
            return wrong?.Invoke(key) == true ? "-1" : g;
        });
    }

    [Fact]
    public void LimitDrawsAStratifiedSeededSampleInWhichEverySkillAppears()
    {
        var task = Mixed();
        // zoo:mixed is grouped by skill in the file: the first 30 items are all additions.
        Assert.Single(task.Dataset.GetSplit("test").Take(30).Select(task.GroupOf).Distinct());
        var thirty = task.GetItems("test", 30);
        var counts = thirty.GroupBy(task.GroupOf).ToDictionary(g => g.Key!, g => g.Count());
        Assert.Equal(["arith", "facts_a", "facts_b"], counts.Keys.Order());
        Assert.All(counts.Values, c => Assert.Equal(10, c)); // 60/60/60 in the split: 10 each
        // Seeded: the same sample again, another seed another sample; a larger limit contains a smaller one.
        Assert.Equal(thirty.Select(i => i.Key), task.GetItems("test", 30).Select(i => i.Key));
        Assert.NotEqual(thirty.Select(i => i.Key), Mixed(seed: 7).GetItems("test", 30).Select(i => i.Key));
        var sixty = task.GetItems("test", 60).Select(i => i.Key).ToList();
        Assert.Equal(thirty.Select(i => i.Key), sixty.Take(30));
        // Every prefix is stratified: each skill within one of its share.
        for (int k = 3; k <= 60; k += 7)
            Assert.All(sixty.Take(k).GroupBy(key => key.Split('-')[0]), g => Assert.InRange(g.Count(), k / 3 - 1, k / 3 + 1));
        // Without a limit: every item, in file order.
        Assert.Equal(task.Dataset.GetSplit("test").Select(i => i.Key), task.GetItems("test").Select(i => i.Key));
    }

    [Fact]
    public void DevFittingSubsetsAreStratifiedSamples()
    {
        var task = Mixed();
        // A method that calibrates on the first 32 dev examples (cascade, likelihood_router) sees every skill.
        var first32 = task.BuildFitData("dev").Examples.Take(32).Select(e => e.Id.Split('-')[0]).ToList();
        Assert.Equal(3, first32.Distinct().Count());
        Assert.All(first32.GroupBy(x => x), g => Assert.InRange(g.Count(), 10, 11));
    }

    [Fact]
    public void BaseModelsGetTheCompletionPromptTheDatasetDeclaresAndInstructModelsTheInstruction()
    {
        var bare = Mixed();
        Assert.Equal("instruction", bare.PromptStyle);
        Assert.NotNull(bare.Dataset.Completion);
        var item = bare.GetItems("test", 1)[0];
        Assert.Contains("Answer:", bare.PromptText(item)); // the instruction a chat model follows
        var forBase = bare.ForModels(baseModels: true);
        Assert.Equal("completion", forBase.PromptStyle);
        Assert.Equal(item.Input, forBase.PromptText(item));
        Assert.Equal(16, forBase.MaxTokens);
        Assert.Equal(["\n"], forBase.BuildChatOptions().StopSequences!);
        Assert.Same(bare, bare.ForModels(baseModels: false));
        // A prompt the config gives is kept for every model.
        var own = Mixed(JsonNode.Parse("""{"dataset": "mixed", "prompt": "{input} "}"""));
        Assert.Same(own, own.ForModels(baseModels: true));
        Assert.Equal("config", own.PromptStyle);
        // The prompt is part of the run's definition.
        Assert.NotEqual(RunDefinition.Of(bare.DefinitionParts()).Digest, RunDefinition.Of(forBase.DefinitionParts()).Digest);
    }

    private static RunDefinition Definition(EvalTask task, double deferral) => RunDefinition.Of(task.DefinitionParts()
        .Append(KeyValuePair.Create("method", (JsonNode?)JsonValue.Create("cascade")))
        .Append(KeyValuePair.Create("options", (JsonNode?)new JsonObject { ["deferral_rate"] = deferral }))
        .Append(KeyValuePair.Create("seed", (JsonNode?)JsonValue.Create(42))));

    [Fact]
    public async Task ResumeRefusesAChangedDefinitionNamingWhatChangedAndFreshStartsOver()
    {
        using var tmp = new TempDir();
        var task = Mixed();
        using var model = Gold(task);
        var first = await EvalRunner.RunAsync(model, task, new EvalRunOptions { OutputDirectory = tmp.Path, Limit = 6, Definition = Definition(task, 0.5) });
        Assert.Equal(6, first.N);

        var e = await Assert.ThrowsAsync<ConsortException>(() =>
            EvalRunner.RunAsync(model, task, new EvalRunOptions { OutputDirectory = tmp.Path, Limit = 6, Definition = Definition(task, 0.95) }));
        Assert.Contains("options changed", e.Message);
        Assert.Contains("\"deferral_rate\":0.5", e.Message);
        Assert.Contains("\"deferral_rate\":0.95", e.Message);
        Assert.Contains("--fresh", e.Message);
        Assert.Equal(6, File.ReadAllLines(Path.Combine(tmp.Path, EvalRunner.ResultsFileName)).Length); // nothing touched

        var fresh = await EvalRunner.RunAsync(model, task, new EvalRunOptions { OutputDirectory = tmp.Path, Limit = 6, Definition = Definition(task, 0.95), Fresh = true });
        Assert.Equal(0, fresh.Resumed);
        Assert.Equal(6, fresh.N);
        Assert.Contains("0.95", File.ReadAllText(Path.Combine(tmp.Path, RunManifest.FileName)));
    }

    [Fact]
    public async Task ALimitThatGrowsOrShrinksReusesTheItemsThatMatch()
    {
        using var tmp = new TempDir();
        var task = Mixed();
        int calls = 0;
        using var model = ScriptedChatClient.Model("m", (p, _, _) => { Interlocked.Increment(ref calls); return Task.FromResult("x"); });
        var def = Definition(task, 0.5);
        await EvalRunner.RunAsync(model, task, new EvalRunOptions { OutputDirectory = tmp.Path, Limit = 10, Definition = def });
        Assert.Equal(10, calls);
        var grown = await EvalRunner.RunAsync(model, task, new EvalRunOptions { OutputDirectory = tmp.Path, Limit = 25, Definition = def });
        Assert.Equal(10, grown.Resumed);
        Assert.Equal(25, grown.N);
        Assert.Equal(25, calls); // only the 15 new items were asked
        var shrunk = await EvalRunner.RunAsync(model, task, new EvalRunOptions { OutputDirectory = tmp.Path, Limit = 5, Definition = def });
        Assert.Equal(25, calls);
        Assert.Equal(5, shrunk.N);
        Assert.Equal(5, shrunk.Total);
        Assert.Equal(task.GetItems("test", 5).Select(i => i.Key).Order(), ResultsFile.Read(Path.Combine(tmp.Path, EvalRunner.ResultsFileName)).Select(r => r.Key).Intersect(task.GetItems("test", 5).Select(i => i.Key)).Order());
    }

    [Fact]
    public async Task ErrorsAreCountedWithTheirFirstMessageAndCause()
    {
        using var tmp = new TempDir();
        var task = Mixed();
        // A real refused connection: a port nobody listens on.
        using var holder = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        holder.Bind(new IPEndPoint(IPAddress.Loopback, 0)); // bound, never listening: refused, and the port stays ours
        int port = ((IPEndPoint)holder.LocalEndPoint!).Port;
        using var http = new HttpClient();
        using var model = ScriptedChatClient.Model("down", async (_, _, ct) => await http.GetStringAsync($"http://127.0.0.1:{port}/v1/chat", ct));
        var summary = await EvalRunner.RunAsync(model, task, new EvalRunOptions { OutputDirectory = tmp.Path, Limit = 5 });
        Assert.Equal(5, summary.Errors);
        Assert.Equal(5, summary.N);
        Assert.Contains("connection refused", summary.FirstError, StringComparison.OrdinalIgnoreCase);
        var onDisk = JsonNode.Parse(File.ReadAllText(Path.Combine(tmp.Path, EvalSummary.FileName)))!;
        Assert.Equal(5, onDisk["errors"]!.GetValue<int>());
        Assert.Contains("connection refused", onDisk["first_error"]!.GetValue<string>(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void CausesAreNamed()
    {
        Assert.Equal("connection refused", ErrorText.Cause(new HttpRequestException("x", new SocketException((int)SocketError.ConnectionRefused))));
        Assert.Equal("HTTP 503 ServiceUnavailable", ErrorText.Cause(new HttpRequestException("x", null, HttpStatusCode.ServiceUnavailable)));
        Assert.Equal("timeout", ErrorText.Cause(new InvalidOperationException("x", new TaskCanceledException())));
        Assert.Contains("[cause: connection refused]", ErrorText.Describe(new ConsortException("model 'm': unreachable", new HttpRequestException("x", new SocketException((int)SocketError.ConnectionRefused)))));
        Assert.DoesNotContain("\n", ErrorText.Describe(new ConsortException("two\nlines")));
    }

    [Fact]
    public async Task ARunThatFailsBeforeItsFirstItemLeavesNoFilesBehind()
    {
        using var tmp = new TempDir();
        var folder = Path.Combine(tmp.Path, "run");
        var task = Mixed();
        using var broken = ScriptedChatClient.Model("broken", (_, _, _) => throw new InvalidOperationException("native failure"));
        await Assert.ThrowsAsync<ConsortException>(() =>
            EvalRunner.RunAsync(broken, task, new EvalRunOptions { OutputDirectory = folder, Limit = 3, Concurrency = 1, OnError = ItemErrorMode.Abort }));
        Assert.False(Directory.Exists(folder) && Directory.EnumerateFileSystemEntries(folder).Any(), string.Join(", ", Directory.Exists(folder) ? Directory.GetFiles(folder) : []));

        using var cts = new CancellationTokenSource();
        using var slow = ScriptedChatClient.Model("slow", async (_, _, ct) => { cts.Cancel(); await Task.Delay(Timeout.Infinite, ct); return ""; });
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            EvalRunner.RunAsync(slow, task, new EvalRunOptions { OutputDirectory = folder, Limit = 3, Concurrency = 1 }, null, cts.Token));
        Assert.False(File.Exists(Path.Combine(folder, EvalRunner.ResultsFileName)));
        Assert.False(File.Exists(Path.Combine(folder, RunManifest.FileName)));
        Assert.False(File.Exists(Path.Combine(folder, EvalSummary.FileName)));
    }

    [Fact]
    public async Task ShardsMergeIntoTheSummaryOfOneUnshardedRun()
    {
        using var tmp = new TempDir();
        var task = Mixed();
        using var model = Gold(task, wrong: key => key.GetHashCode(StringComparison.Ordinal) % 3 == 0 || key.StartsWith("facts_b", StringComparison.Ordinal));
        var def = Definition(task, 0.5);
        var whole = await EvalRunner.RunAsync(model, task, new EvalRunOptions { OutputDirectory = Path.Combine(tmp.Path, "whole", "run"), Limit = 40, Definition = def });
        var shardDirs = new List<string>();
        int items = 0;
        for (int i = 1; i <= 3; i++)
        {
            var dir = Path.Combine(tmp.Path, $"shard{i}");
            shardDirs.Add(dir);
            var s = await EvalRunner.RunAsync(model, task, new EvalRunOptions { OutputDirectory = Path.Combine(dir, "run"), Limit = 40, Definition = def, Shard = new ShardSpec(i, 3) });
            Assert.InRange(s.N, 13, 14);
            items += s.N;
        }
        Assert.Equal(40, items);
        var merged = ShardMerger.Merge(shardDirs, Path.Combine(tmp.Path, "merged")).Single().Summary;
        Assert.Equal(whole.N, merged.N);
        Assert.Equal(whole.Total, merged.Total);
        Assert.Equal(whole.Score, merged.Score, 12);
        Assert.Equal(whole.Ci, merged.Ci);
        Assert.Equal(whole.Errors, merged.Errors);
        Assert.Equal(whole.InputTokens, merged.InputTokens);
        Assert.Equal(whole.OutputTokens, merged.OutputTokens);
        Assert.Equal(whole.Groups!.OrderBy(g => g.Key), merged.Groups!.OrderBy(g => g.Key));
        Assert.Null(merged.Shard);
        Assert.True(merged.Complete);

        // A missing shard is named, and so is a shard of another definition.
        Assert.Contains("2/3", Assert.Throws<ConsortException>(() => ShardMerger.Merge([shardDirs[0], shardDirs[2]], Path.Combine(tmp.Path, "m2"))).Message);
        Assert.Equal(new ShardSpec(2, 5), ShardSpec.Parse("2/5"));
        Assert.Throws<ConfigException>(() => ShardSpec.Parse("0/2"));
        Assert.Throws<ConfigException>(() => ShardSpec.Parse("3/2"));
    }

    [Fact]
    public void PairedStatisticsMatchKnownValues()
    {
        // McNemar exact: b = 10, c = 2 -> p = 2 * P(X <= 2 | n = 12) = 2 * 79/4096.
        Assert.Equal(2 * 79 / 4096.0, PairedStatistics.McNemarExact(10, 2), 12);
        Assert.Equal(1.0, PairedStatistics.McNemarExact(3, 3));
        var a = Enumerable.Range(0, 200).Select(i => i % 2 == 0 ? 1.0 : 0.0).ToList();
        var b = Enumerable.Range(0, 200).Select(i => i % 2 == 0 || i % 5 == 1 ? 1.0 : 0.0).ToList(); // B solves 20 more
        var c = PairedStatistics.Compare(a, b);
        Assert.Equal(0.1, c.Difference, 12);
        Assert.True(c.Low > 0 && c.High > c.Low && c.Low < 0.1 && c.High > 0.1);
        Assert.Equal(0, c.OnlyA);
        Assert.Equal(20, c.OnlyB);
        Assert.True(c.McNemarP < 1e-5);
        Assert.Equal(c, PairedStatistics.Compare(a, b)); // seeded: reproducible
        var same = PairedStatistics.Compare(a, a);
        Assert.Equal(0, same.Low);
        Assert.Equal(0, same.High);
        Assert.Equal(1.0, same.McNemarP);
    }

    [Fact]
    public void ParetoFrontKeepsTheRunsNoOtherBeatsOnBoth()
    {
        var front = RunAnalysis.ParetoFront([(10, 0.5), (20, 0.9), (15, 0.4), (5, 0.3), (30, 0.9)]);
        Assert.Equal([3, 0, 1], front);
    }
}
