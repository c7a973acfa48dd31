using System.Text.Json.Nodes;
using Consort.Evaluation;
using Consort.Testing;
using Xunit;

namespace Consort.Tests.Evaluation;

public sealed class RunnerTests
{
    private static string[] Folders => [Path.Combine(TestPaths.Shared, "datasets")];

    // Replies with the gold answer of gsm8k items it knows, so the score is predictable.
    private static Func<string, int, CancellationToken, Task<string>> Oracle(EvalTask task, IReadOnlyList<EvalItem> items, Func<int, bool>? correct = null)
    {
        var gold = items.ToDictionary(i => task.PromptText(i), i => task.Type.Gold(i));
        return async (prompt, n, ct) =>
        {
            await Task.Delay(2, ct);
            return correct is null || correct(n) ? $"Let me think.\n#### {gold[prompt]}" : "#### -1";
        };
    }

    private static List<JsonObject> Lines(string folder) =>
        File.ReadAllLines(Path.Combine(folder, EvalRunner.ResultsFileName)).Select(l => (JsonObject)JsonNode.Parse(l)!).ToList();

    [Fact]
    public async Task RunsAndWritesResultsSummaryAndManifest()
    {
        using var tmp = new TempDir();
        var task = EvalTask.Create(JsonValue.Create("gsm8k"), Folders);
        var items = task.GetItems("test", 12);
        using var model = ScriptedChatClient.Model("oracle", Oracle(task, items, n => n % 4 != 0)); // 3 of 12 wrong
        var reports = new List<EvalProgress>();
        var summary = await EvalRunner.RunAsync(model, task, new EvalRunOptions { OutputDirectory = tmp.Path, Limit = 12, Concurrency = 3 },
            new SyncProgress(reports.Add));

        Assert.Equal(12, summary.N);
        Assert.Equal(12, summary.Total);
        Assert.Equal(0.75, summary.Score, 9);
        Assert.Equal("wilson", summary.Ci!.Method);
        Assert.True(summary.Ci.Low < 0.75 && summary.Ci.High > 0.75);
        Assert.Equal("single", summary.Method);
        Assert.Equal(["oracle"], summary.Models);
        Assert.True(summary.InputTokens > 0 && summary.OutputTokens > 0);
        Assert.NotNull(summary.Cost); // the fake model has a price
        var final = reports.MaxBy(r => r.Done)!;
        Assert.Equal(12, final.Done);
        Assert.Equal(0.75, final.Score, 9);

        var lines = Lines(tmp.Path);
        Assert.Equal(12, lines.Count);
        var first = lines.Single(l => (string)l["key"]! == items[0].Key);
        Assert.Equal(task.PromptText(items[0]), (string)first["input"]!);
        Assert.Equal(items[0].Output!.GetValue<string>(), (string)first["gold"]!);
        Assert.NotNull(first["usage"]!["input_tokens"]);
        Assert.NotNull(first["latency_ms"]);
        Assert.NotNull(first["trace"]);
        Assert.True(File.Exists(Path.Combine(tmp.Path, RunManifest.FileName)));
        var onDisk = EvalSummary.Read(tmp.Path);
        Assert.Equal(summary.Score, onDisk.Score);
        Assert.Equal(12, onDisk.Groups!["gsm8k"].N); // gsm8k items carry "domain": "gsm8k"
    }

    [Fact]
    public async Task ResumesAfterCancellationAndTornLineWithoutDuplicates()
    {
        using var tmp = new TempDir();
        var task = EvalTask.Create(JsonValue.Create("gsm8k"), Folders);
        var items = task.GetItems("test", 20);
        var options = new EvalRunOptions { OutputDirectory = tmp.Path, Limit = 20, Concurrency = 4 };
        var oracle = Oracle(task, task.GetItems("test", 25));

        // First run: cancelled ("killed") after about 7 items.
        using var cts = new CancellationTokenSource();
        using (var m1 = ScriptedChatClient.Model("m", async (p, n, ct) =>
               {
                   if (n == 8) await cts.CancelAsync();
                   return await oracle(p, n, ct);
               }))
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => EvalRunner.RunAsync(m1, task, options, null, cts.Token));
        }
        int afterKill = Lines(tmp.Path).Count;
        Assert.InRange(afterKill, 1, 19);
        var partial = EvalSummary.Read(tmp.Path);
        Assert.Equal(afterKill, partial.N);
        Assert.False(partial.Complete);

        // Simulate a kill in the middle of a write: a torn last line.
        var resultsPath = Path.Combine(tmp.Path, EvalRunner.ResultsFileName);
        var tornKey = items.First(i => !Lines(tmp.Path).Any(l => (string)l["key"]! == i.Key)).Key;
        File.AppendAllText(resultsPath, $"{{\"key\":\"{tornKey}\",\"id\":1,\"input\":\"half a li");

        // Second run resumes: calls only the missing items.
        var calls = 0;
        using var m2 = ScriptedChatClient.Model("m", (p, n, ct) => { Interlocked.Increment(ref calls); return oracle(p, n, ct); });
        var summary = await EvalRunner.RunAsync(m2, task, options);
        Assert.Equal(20 - afterKill, calls);
        Assert.Equal(20, summary.N);
        Assert.Equal(afterKill, summary.Resumed);
        Assert.Equal(1.0, summary.Score);
        var keys = Lines(tmp.Path).Select(l => (string)l["key"]!).ToList();
        Assert.Equal(20, keys.Count);
        Assert.Equal(items.Select(i => i.Key).Order(), keys.Order());

        // A third run finds everything done and calls nothing.
        using var m3 = ScriptedChatClient.Model("m", (p, n, ct) => throw new InvalidOperationException("should not be called"));
        var again = await EvalRunner.RunAsync(m3, task, options);
        Assert.Equal(20, again.N);
        Assert.Equal(20, Lines(tmp.Path).Count);

        // Extending the limit runs only the new items.
        var more = await EvalRunner.RunAsync(m2, task, options with { Limit = 25 });
        Assert.Equal(25, more.N);
        Assert.Equal(0, more.Errors);
        Assert.Equal(20, more.Resumed);
        Assert.Equal(25, Lines(tmp.Path).Count);
    }

    [Fact]
    public async Task ErrorsAreRecordedThenRetriedOrAbort()
    {
        using var tmp = new TempDir();
        var task = EvalTask.Create(JsonValue.Create("gsm8k"), Folders);
        var items = task.GetItems("test", 10);
        var oracle = Oracle(task, items);
        var bad = task.PromptText(items[3]);
        var options = new EvalRunOptions { OutputDirectory = tmp.Path, Limit = 10, Concurrency = 2 };
        using (var flaky = ScriptedChatClient.Model("m", (p, n, ct) => p == bad ? throw new HttpRequestException("server said 500") : oracle(p, n, ct)))
        {
            var s = await EvalRunner.RunAsync(flaky, task, options);
            Assert.Equal(10, s.N);
            Assert.Equal(1, s.Errors);
            Assert.Equal(0.9, s.Score, 9);
            var err = Lines(tmp.Path).Single(l => l["error"] is not null);
            Assert.Contains("server said 500", (string)err["error"]!);
            Assert.Equal(0.0, (double)err["score"]!);
        }
        // Rerun retries the failed item only, replacing its line.
        using (var ok = ScriptedChatClient.Model("m", oracle))
        {
            var s = await EvalRunner.RunAsync(ok, task, options);
            Assert.Equal(0, s.Errors);
            Assert.Equal(1.0, s.Score);
            Assert.Equal(10, Lines(tmp.Path).Count);
        }
        // Abort mode stops the run with a clear error.
        using var tmp2 = new TempDir();
        using var failing = ScriptedChatClient.Model("m", (p, n, ct) => p == bad ? throw new HttpRequestException("boom") : oracle(p, n, ct));
        var e = await Assert.ThrowsAsync<ConsortException>(() => EvalRunner.RunAsync(failing, task,
            options with { OutputDirectory = tmp2.Path, OnError = ItemErrorMode.Abort, Concurrency = 1 }));
        Assert.Contains(items[3].Key, e.Message);
        Assert.Contains("boom", e.Message);
        Assert.DoesNotContain(Lines(tmp2.Path), l => l["error"] is not null);
    }

    [Fact]
    public async Task HangingItemTimesOutAsAnError()
    {
        using var tmp = new TempDir();
        var task = EvalTask.Create(JsonValue.Create("gsm8k"), Folders);
        var items = task.GetItems("test", 4);
        var oracle = Oracle(task, items);
        var stuck = task.PromptText(items[1]);
        using var model = ScriptedChatClient.Model("m", async (p, n, ct) =>
        {
            if (p == stuck) await Task.Delay(Timeout.Infinite, ct);
            return await oracle(p, n, ct);
        });
        var s = await EvalRunner.RunAsync(model, task, new EvalRunOptions { OutputDirectory = tmp.Path, Limit = 4, ItemTimeout = TimeSpan.FromMilliseconds(300) });
        Assert.Equal(4, s.N);
        Assert.Equal(1, s.Errors);
        Assert.Equal(0.75, s.Score, 9);
        Assert.Contains("timed out", (string)Lines(tmp.Path).Single(l => l["error"] is not null)["error"]!);
    }

    [Fact]
    public void ResultsFileRepairsOnlyTheLastLine()
    {
        using var tmp = new TempDir();
        var path = tmp.File("results.jsonl");
        // A whole record that lost only its newline is kept (and the newline restored).
        File.WriteAllText(path, "{\"key\":\"a\",\"score\":1}\n{\"key\":\"b\",\"score\":0.5}");
        using (var f = ResultsFile.Open(path, dropErrors: true, out var existing))
        {
            Assert.Equal(["a", "b"], existing.Keys.Order());
            Assert.Equal(0.5, existing["b"].Score);
        }
        Assert.EndsWith("}\n", File.ReadAllText(path));

        // A broken line before the end is not silently dropped.
        File.WriteAllText(path, "{\"key\":\"a\",\"score\":1}\n{\"key\":\"b\",\"sco\n{\"key\":\"c\",\"score\":1}\n");
        var e = Assert.Throws<ConsortException>(() => ResultsFile.Read(path));
        Assert.Contains("line 2", e.Message);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public async Task RefusesToResumeAnotherRun()
    {
        using var tmp = new TempDir();
        var task = EvalTask.Create(JsonValue.Create("gsm8k"), Folders);
        var items = task.GetItems("test", 3);
        using var a = ScriptedChatClient.Model("model-a", Oracle(task, items));
        await EvalRunner.RunAsync(a, task, new EvalRunOptions { OutputDirectory = tmp.Path, Limit = 3 });
        using var b = ScriptedChatClient.Model("model-b", Oracle(task, items));
        var e = await Assert.ThrowsAsync<ConsortException>(() => EvalRunner.RunAsync(b, task, new EvalRunOptions { OutputDirectory = tmp.Path, Limit = 3 }));
        Assert.Contains("model-a", e.Message);
        Assert.Contains("--out", e.Message);
        var e2 = await Assert.ThrowsAsync<ConsortException>(() => EvalRunner.RunAsync(a, task, new EvalRunOptions { OutputDirectory = tmp.Path, Split = "dev", Limit = 3 }));
        Assert.Contains("split", e2.Message);
    }

    [Fact]
    public async Task SideBySideComparesModelsOnTheSameItems()
    {
        using var tmp = new TempDir();
        var task = EvalTask.Create(JsonValue.Create("gsm8k"), Folders);
        var items = task.GetItems("test", 8);
        using var good = ScriptedChatClient.Model("good", Oracle(task, items));
        using var half = ScriptedChatClient.Model("half/model", Oracle(task, items, n => n % 2 == 0));
        using var collab = new ConsortModel(new ModelDescriptor { Name = "vote", Access = ModelAccess.Text },
            new ScriptedChatClient(Oracle(task, items)), members: [good, half], method: "majority_vote");
        var summaries = await SideBySideRunner.RunAsync([good, half, collab], task, new EvalRunOptions { OutputDirectory = tmp.Path, Limit = 8 });
        Assert.Equal([1.0, 0.5, 1.0], summaries.Select(s => s.Score));
        Assert.Equal("majority_vote", summaries[2].Method);
        Assert.Equal(["good", "half/model"], summaries[2].Models);
        Assert.True(File.Exists(Path.Combine(tmp.Path, "half_model", EvalRunner.ResultsFileName)));

        var table = ComparisonTable.From(summaries);
        Assert.Equal(3, table.Rows.Count);
        var text = table.Render();
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(6, lines.Length); // title, header, rule, 3 rows
        Assert.Contains("score ± 95% CI", lines[1]);
        Assert.Contains("0.500 ±", lines[4]);
        Assert.Contains("majority_vote", lines[5]);
        Assert.Single(lines.Skip(1).Select(l => l.Length).Distinct()); // aligned columns: every line equally wide
    }

    private sealed class SyncProgress(Action<EvalProgress> report) : IProgress<EvalProgress>
    {
        private readonly Lock _lock = new();
        public void Report(EvalProgress value) { lock (_lock) report(value); }
    }
}
