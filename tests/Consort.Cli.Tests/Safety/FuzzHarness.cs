using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Consort.Cli.Commands;
using Consort.LlamaCpp;
using Consort.Testing;

namespace Consort.Cli.Tests.Safety;

/// <summary>Counts of one fuzz run and the failures (internal errors, hangs, native crashes, unsafe messages).</summary>
internal sealed class FuzzReport(string kind)
{
    public string Kind { get; } = kind;
    public int Mutants { get; set; }
    public int Checks { get; set; }
    public int Accepted { get; set; }
    public int ClearErrors { get; set; }
    public int LoadedByLlamaCpp { get; set; }
    public int NativeCrashes { get; set; }
    public int Hangs { get; set; }
    public int Internal { get; set; }
    public List<string> Failures { get; } = [];
    public Dictionary<string, int> ErrorShapes { get; } = new(StringComparer.Ordinal);
    public TimeSpan Elapsed { get; set; }
    public (TimeSpan Time, string What) Slowest { get; set; }

    public override string ToString() =>
        $"{Kind}: {Mutants} mutants ({Checks} checks) in {Elapsed.TotalSeconds:F0} s: {ClearErrors} clear errors, {Accepted} accepted ({LoadedByLlamaCpp} loaded and run by llama.cpp), " +
        $"{NativeCrashes} native crashes, {Hangs} hangs, {Internal} internal errors; slowest check {Slowest.Time.TotalSeconds:F1} s ({MessageText.Escape(Slowest.What, 80)})";

    public JsonObject ToJson() => new()
    {
        ["kind"] = Kind, ["mutants"] = Mutants, ["checks"] = Checks, ["clear_errors"] = ClearErrors, ["accepted"] = Accepted, ["loaded_by_llama_cpp"] = LoadedByLlamaCpp,
        ["native_crashes"] = NativeCrashes, ["hangs"] = Hangs, ["internal_errors"] = Internal, ["seconds"] = Math.Round(Elapsed.TotalSeconds, 1),
        ["failures"] = new JsonArray(Failures.Select(f => (JsonNode)JsonValue.Create(f)!).ToArray()),
        ["top_errors"] = new JsonObject(ErrorShapes.OrderByDescending(kv => kv.Value).Take(15).Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
    };
}

/// <summary>
/// Runs mutants through Consort's own entry points in this process (llama.cpp is reached only through the first-load
/// probe, or through <see cref="ProbeBatch"/>, both in child processes) and classifies what happened.
/// </summary>
internal sealed class FuzzHarness(FuzzReport report)
{
    /// <summary>Total mutants of a default test run; <c>CONSORT_FUZZ_MUTANTS</c> sets more for the long run.</summary>
    public static int TotalMutants => int.TryParse(Environment.GetEnvironmentVariable("CONSORT_FUZZ_MUTANTS"), out var n) && n > 0 ? n : 300;
    /// <summary>Seed of the mutations; <c>CONSORT_FUZZ_SEED</c> picks another sequence.</summary>
    public static int Seed => int.TryParse(Environment.GetEnvironmentVariable("CONSORT_FUZZ_SEED"), out var s) ? s : 20261201;

    public FuzzReport Report => report;
    private readonly List<(string File, string What)> _toProbe = [];

    /// <summary>Runs one mutant's check with a time limit; a ConsortException is the clear error every bad input must give.</summary>
    /// <returns>True when the input was accepted.</returns>
    /// <param name="what">The mutation, for the report.</param>
    /// <param name="action">The check.</param>
    /// <param name="limit">Time limit (a hang past it is a failure).</param>
    /// <param name="newMutant">False for a check of something made from a mutant already counted.</param>
    /// <param name="input">The mutant's file or folder: kept under artifacts/fuzz/failures/ when the check fails, to reproduce it.</param>
    public bool Check(string what, Func<CancellationToken, Task> action, TimeSpan? limit = null, bool newMutant = true, string? input = null)
    {
        int failuresBefore = report.Failures.Count;
        try { return CheckCore(what, action, limit, newMutant); }
        finally { if (report.Failures.Count > failuresBefore && input is not null) Keep(input); }
    }

    private void Keep(string input)
    {
        var dir = Path.Combine(TestPaths.RepoRoot, "artifacts", "fuzz", "failures", $"{report.Kind}-{report.Failures.Count}");
        Directory.CreateDirectory(dir);
        try
        {
            if (File.Exists(input)) File.Copy(input, Path.Combine(dir, Path.GetFileName(input)), true);
            else if (Directory.Exists(input))
                foreach (var f in Directory.GetFiles(input)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)), true);
            report.Failures[^1] += $" (input kept in {dir})";
        }
        catch (IOException) { }
    }

    private bool CheckCore(string what, Func<CancellationToken, Task> action, TimeSpan? limit, bool newMutant)
    {
        if (newMutant) report.Mutants++;
        report.Checks++;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var cts = new CancellationTokenSource();
        var task = Task.Run(() => action(cts.Token));
        bool completed;
        try { completed = task.Wait(limit ?? TimeSpan.FromSeconds(60)); }
        catch (AggregateException) { completed = true; } // faulted: classified below
        if (!completed)
        {
            cts.Cancel();
            report.Hangs++;
            report.Failures.Add($"hang: {what}");
            return false;
        }
        if (clock.Elapsed > report.Slowest.Time) report.Slowest = (clock.Elapsed, what);
        if (task.Exception?.InnerException is not { } e)
        {
            report.Accepted++;
            return true;
        }
        if (e is ConsortException or IOException or UnauthorizedAccessException)
        {
            report.ClearErrors++;
            string message = e.Message;
            if (message.Length > 4500 || message.Any(c => c < ' ' && c != '\t'))
                report.Failures.Add($"unsafe message ({message.Length} characters, control characters escaped here): {what}: {MessageText.Escape(message, 300)}");
            string shape = string.Concat(System.Text.RegularExpressions.Regex.Replace(message, @"/[^\s:']+|'[^']*'|\d+", "_").Take(70));
            report.ErrorShapes[shape] = report.ErrorShapes.GetValueOrDefault(shape) + 1;
            return false;
        }
        report.Internal++;
        report.Failures.Add($"internal: {e.GetType().Name}: {MessageText.Escape(e.Message, 300)} <- {what}\n{e.StackTrace?.Split('\n').FirstOrDefault()}");
        return false;
    }

    /// <summary>The GGUF pipeline: the loader's verdict (what inspect, run and serve all use); files it accepts are run by llama.cpp in a child (<see cref="ProbeBatch"/>).</summary>
    /// <param name="path">The file.</param>
    /// <param name="what">The mutation, for failure reports.</param>
    /// <param name="newMutant">False for files made from a mutant (converted, merged): the mutant was counted already.</param>
    public void CheckGguf(string path, string what, bool newMutant = true)
    {
        if (Check(what, _ =>
            {
                var report = InspectCommand.Inspect(path);
                if (report["valid"]!.GetValue<bool>() != true) throw new ConsortException("inspect: " + report["verdict"]);
                return Task.CompletedTask;
            }, newMutant: newMutant, input: path))
            _toProbe.Add((path, what));
    }

    /// <summary>
    /// Loads and runs every accepted GGUF in one <c>consort probe</c> child per batch (a crash ends the batch; the first
    /// file without a report line is the one that killed it; the rest continue in a new child).
    /// </summary>
    public async Task ProbeBatchAsync()
    {
        var pending = _toProbe.ToList();
        _toProbe.Clear();
        while (pending.Count > 0)
        {
            var r = await MeasuredCli.RunAsync(new Dictionary<string, string> { ["GGML_NO_BACKTRACE"] = "1", [LlamaProbe.ModeVariable] = "off" },
                ["probe", "--batch", .. pending.Take(40).Select(p => p.File)]);
            var lines = r.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith('{')).ToList();
            int done = Math.Min(lines.Count, pending.Count);
            for (int i = 0; i < done; i++)
            {
                var o = JsonNode.Parse(lines[i])!;
                if ((bool?)o["ok"] == true) report.LoadedByLlamaCpp++;
                else if (((string?)o["error"] ?? "").Contains("internal", StringComparison.Ordinal))
                    report.Failures.Add($"probe child error: {o["error"]} <- {pending[i].What}");
            }
            if (r.Code is >= 128 or < 0 && done < Math.Min(40, pending.Count))
            {
                report.NativeCrashes++;
                report.Failures.Add($"llama.cpp crashed (exit {r.Code}) on a file the validator accepted: {pending[done].What}: {LlamaProbe.LastNativeMessage(r.ErrLines)}");
                done++;
            }
            else if (r.Code != 0)
                report.Failures.Add($"probe batch failed (exit {r.Code}): {MessageText.Escape(r.Err, 300)}");
            pending.RemoveRange(0, Math.Max(1, done));
        }
    }

    /// <summary>Writes the report under artifacts/fuzz/ (the counts a README or a closing note quotes).</summary>
    public void Save()
    {
        var dir = Path.Combine(TestPaths.RepoRoot, "artifacts", "fuzz");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, report.Kind + ".json"), report.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }
}
