using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Consort.Testing;
using Microsoft.Extensions.Logging;

namespace Consort.Server.Tests;

/// <summary>A real <c>consort serve</c> process (the CLI built beside the tests) on a loopback port; output captured.</summary>
internal sealed class ServeProcess : IAsyncDisposable
{
    private readonly Process _p;
    private readonly StringBuilder _out = new();

    private ServeProcess(Process p, string url) { _p = p; Url = url; }

    public string Url { get; }
    public int Pid => _p.Id;
    public bool Exited => _p.HasExited;
    public int ExitCode => _p.ExitCode;
    /// <summary>Everything written to stdout and stderr so far.</summary>
    public string Output { get { lock (_out) return _out.ToString(); } }

    public static ServeProcess Start(string config, int? port = null, IDictionary<string, string>? env = null)
    {
        string url = $"http://127.0.0.1:{port ?? TestNet.FreePort()}";
        var psi = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "consort.dll"), "serve", config, "--urls", url])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        psi.Environment.Remove("CONSORT_API_KEYS");
        if (env is not null) foreach (var (k, v) in env) psi.Environment[k] = v;
        var p = new Process { StartInfo = psi };
        var sp = new ServeProcess(p, url);
        p.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (sp._out) sp._out.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (sp._out) sp._out.AppendLine(e.Data); };
        p.Start();
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return sp;
    }

    /// <summary>Waits (bounded) until /health answers.</summary>
    public async Task WaitHealthyAsync(TimeSpan? limit = null)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var until = DateTime.UtcNow + (limit ?? TimeSpan.FromSeconds(90));
        while (DateTime.UtcNow < until)
        {
            if (_p.HasExited) throw new InvalidOperationException($"consort serve exited with {_p.ExitCode}:\n{Output}");
            try
            {
                if ((await http.GetAsync(Url + "/health")).IsSuccessStatusCode) return;
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException) { }
            await Task.Delay(200);
        }
        throw new TimeoutException($"consort serve at {Url} did not become healthy:\n{Output}");
    }

    public void Kill() { try { _p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } }

    /// <summary>Sends SIGTERM (the signal a process manager stops a service with).</summary>
    public void Terminate() => Process.Start("kill", ["-TERM", _p.Id.ToString()])!.WaitForExit(5000);

    public async Task<int> WaitExitAsync(TimeSpan limit)
    {
        using var cts = new CancellationTokenSource(limit);
        await _p.WaitForExitAsync(cts.Token);
        _p.WaitForExit(); // flushes the redirected output
        return _p.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_p.HasExited) { Kill(); try { await WaitExitAsync(TimeSpan.FromSeconds(10)); } catch (OperationCanceledException) { } }
        _p.Dispose();
    }
}

/// <summary>A real redis-server (Debian's package, installed by tests/setup.sh) on a free loopback port, without persistence.</summary>
internal sealed class RedisProcess : IDisposable
{
    private readonly Process _p;

    private RedisProcess(Process p, int port) { _p = p; Port = port; }

    public int Port { get; }
    public string Connection => $"127.0.0.1:{Port}";

    public static async Task<RedisProcess> StartAsync(int? port = null)
    {
        int pt = port ?? TestNet.FreePort();
        var psi = new ProcessStartInfo("redis-server", ["--port", pt.ToString(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "yes"])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        Process p;
        try { p = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException("redis-server is not installed; run tests/setup.sh (test.sh does)", e);
        }
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        var r = new RedisProcess(p, pt);
        for (int i = 0; i < 100; i++)
        {
            try
            {
                using var c = new TcpClient();
                await c.ConnectAsync("127.0.0.1", pt);
                return r;
            }
            catch (SocketException) { await Task.Delay(100); }
        }
        r.Dispose();
        throw new TimeoutException($"redis-server did not listen on {pt}");
    }

    public void Kill()
    {
        try { _p.Kill(); _p.WaitForExit(5000); } catch (InvalidOperationException) { }
    }

    public void Dispose()
    {
        Kill();
        _p.Dispose();
    }
}

/// <summary>Collects every log line a server writes (for tests that grep all output).</summary>
internal sealed class CapturingLoggerProvider : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _lines = new();

    public IReadOnlyList<string> Lines => [.. _lines];
    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _lines);
    public void Dispose() { }

    private sealed class Logger(string category, ConcurrentQueue<string> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            lines.Enqueue($"{logLevel} {category}: {formatter(state, exception)} {exception}");
    }
}
