using System.Diagnostics;
using System.Text.Json.Nodes;
using Consort.Testing;

namespace Consort.Cli.Tests;

/// <summary>Runs the real <c>consort</c> program (built beside the tests) as a child process.</summary>
internal static class CliHarness
{
    public static string Dll => Path.Combine(AppContext.BaseDirectory, "consort.dll");

    // Each invocation gets its own call cache (unless a test names one), so no test sees another's cached calls.
    private static readonly TempDir Caches = new();

    public static ProcessStartInfo StartInfo(params string[] args) => StartInfo(null, args);

    public static ProcessStartInfo StartInfo(IReadOnlyDictionary<string, string>? env, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        psi.ArgumentList.Add(Dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["NO_COLOR"] = "1";
        psi.Environment["CONSORT_CALL_CACHE"] = Caches.File($"calls-{Guid.NewGuid():N}.sqlite");
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        return psi;
    }

    public static Task<(int Code, string Out, string Err)> RunAsync(params string[] args) => RunWithAsync(null, null, args);

    public static Task<(int Code, string Out, string Err)> RunWithAsync(IReadOnlyDictionary<string, string>? env, string? stdin, params string[] args) =>
        RunWithAsync(env, stdin, TimeSpan.FromMinutes(10), args); // generous: a loaded shared machine is several times slower

    public static async Task<(int Code, string Out, string Err)> RunWithAsync(IReadOnlyDictionary<string, string>? env, string? stdin, TimeSpan limit, params string[] args)
    {
        using var p = Process.Start(StartInfo(env, args))!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (stdin is not null) await p.StandardInput.WriteAsync(stdin);
        p.StandardInput.Close();
        using var timeout = new CancellationTokenSource(limit);
        try { await p.WaitForExitAsync(timeout.Token); }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true); // never leave a run behind
            throw new TimeoutException($"consort {string.Join(' ', args)} ran longer than {limit.TotalMinutes:0} min");
        }
        return (p.ExitCode, await stdout, await stderr);
    }

    /// <summary>A small f1 task of story openings and their continuations, as a dataset file.</summary>
    /// <summary>Starts <c>consort serve CONFIG</c> on loopback at <paramref name="port"/> and waits until /health answers (the caller kills it).</summary>
    public static async Task<Process> StartServerAsync(string config, int port)
    {
        var p = Process.Start(StartInfo("serve", config, "--urls", $"http://127.0.0.1:{port}"))!;
        _ = p.StandardOutput.ReadToEndAsync();
        _ = p.StandardError.ReadToEndAsync();
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(60))
        {
            if (p.HasExited) throw new InvalidOperationException("consort serve exited early");
            try { if ((await http.GetAsync($"http://127.0.0.1:{port}/health")).IsSuccessStatusCode) return p; }
            catch (HttpRequestException) { }
            catch (TaskCanceledException) { }
            await Task.Delay(100);
        }
        p.Kill(true);
        throw new TimeoutException("consort serve did not become healthy");
    }

    public static string WriteStoryDataset(string folder, int items)
    {
        string[] openings = ["Once upon a time", "One day, a little girl", "Tom and his dog", "The sun was shining and", "Lily wanted to play"];
        var test = new JsonArray();
        for (int i = 0; i < items; i++)
            test.Add(new JsonObject { ["id"] = $"s{i}", ["input"] = openings[i % openings.Length], ["output"] = "there was a little girl named Lily" });
        var dev = new JsonArray(new JsonObject { ["id"] = "d0", ["input"] = "Once upon a time", ["output"] = "there was a little girl" },
                                new JsonObject { ["id"] = "d1", ["input"] = "One day", ["output"] = "a boy went to the park" });
        var path = Path.Combine(folder, "stories.json");
        File.WriteAllText(path, new JsonObject { ["dataset"] = "stories", ["task_type"] = "f1_match", ["dev"] = dev, ["test"] = test }.ToJsonString());
        return path;
    }

    public static List<JsonObject> Results(string folder) =>
        File.ReadAllLines(Path.Combine(folder, "results.jsonl")).Where(l => l.Length > 0).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();
}
