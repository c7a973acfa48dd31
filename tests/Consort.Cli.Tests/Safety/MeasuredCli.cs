using System.Diagnostics;

namespace Consort.Cli.Tests.Safety;

/// <summary>What a child <c>consort</c> process did: exit code, output, wall and CPU time, peak resident memory.</summary>
internal sealed record ChildResult(int Code, string Out, string Err, TimeSpan Elapsed, TimeSpan Cpu, long PeakRssBytes)
{
    public string[] ErrLines => Err.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    public override string ToString() => $"exit {Code} after {Elapsed.TotalSeconds:F1} s ({Cpu.TotalSeconds:F1} s CPU), peak {PeakRssBytes / 1e6:F0} MB; stderr: {Err}";
}

/// <summary>Runs the real CLI as a child process (a native crash kills only the child) and measures it.</summary>
internal static class MeasuredCli
{
    public static async Task<ChildResult> RunAsync(IReadOnlyDictionary<string, string>? env, params string[] args)
    {
        var psi = CliHarness.StartInfo(args);
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        long peak = 0;
        double cpu = 0;
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var exited = p.WaitForExitAsync(timeout.Token);
        // VmHWM is the peak so far: sampling it until the exit gives the peak of the whole run.
        while (!exited.IsCompleted)
        {
            peak = Math.Max(peak, PeakRss(p.Id));
            cpu = Math.Max(cpu, CpuSeconds(p.Id));
            await Task.WhenAny(exited, Task.Delay(20));
        }
        try { await exited; }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"consort {string.Join(' ', args)} did not finish within 2 minutes (a hang)");
        }
        sw.Stop();
        return new ChildResult(p.ExitCode, await stdout, await stderr, sw.Elapsed, TimeSpan.FromSeconds(cpu), peak);
    }

    private static long PeakRss(int pid)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException) { }
        return 0;
    }

    /// <summary>User plus system CPU time so far (fields 14 and 15 of /proc/PID/stat, in clock ticks of 1/100 s).</summary>
    private static double CpuSeconds(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return (long.Parse(fields[11]) + long.Parse(fields[12])) / 100.0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException) { return 0; }
    }

    /// <summary>The contract for bad input: a clear one-line error, no crash, quickly and in bounded memory.</summary>
    public static void AssertClearError(ChildResult r, string? mentions = null, double maxSeconds = 5, long maxBytes = 500L << 20)
    {
        Assert.True(r.Code is > 0 and < 128, $"expected a clean failure (exit 1..127): {r}");
        Assert.NotEmpty(r.ErrLines);
        foreach (var line in r.ErrLines)
        {
            Assert.StartsWith("error: ", line);
            Assert.DoesNotContain("internal:", line);
            Assert.True(line.Length <= 4200, $"error line of {line.Length} characters: strings from files must be cut");
        }
        Assert.DoesNotContain('\0', r.Err);
        if (mentions is not null) Assert.Contains(mentions, r.Err);
        // The bound is on the work done (CPU time): the test machine runs many processes at once, so wall time
        // there measures the machine's load. Wall time gets a looser bound that still catches any hang.
        Assert.True(r.Cpu.TotalSeconds < maxSeconds, $"used {r.Cpu.TotalSeconds:F1} s of CPU (bound {maxSeconds} s): {r}");
        Assert.True(r.Elapsed.TotalSeconds < maxSeconds * 4, $"took {r.Elapsed.TotalSeconds:F1} s (bound {maxSeconds * 4} s): {r}");
        Assert.True(r.PeakRssBytes < maxBytes, $"peak memory {r.PeakRssBytes / 1e6:F0} MB (bound {maxBytes / 1e6:F0} MB): {r}");
    }
}
