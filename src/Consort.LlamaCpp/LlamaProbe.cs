using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using LLama.Native;

namespace Consort.LlamaCpp;

/// <summary>The verdict of a first-load probe.</summary>
/// <param name="Path">The model file.</param>
/// <param name="Ok">True when llama.cpp loaded it, tokenized, decoded and produced logits without dying.</param>
/// <param name="Error">Why not (names the file and llama.cpp's last message), when not ok.</param>
/// <param name="Cached">True when the verdict came from the cache (no child process ran).</param>
/// <param name="Elapsed">Time this check took (the child process, or the cache look-up).</param>
/// <param name="Isolated">False when no child process could be used (no launcher, or probing switched off).</param>
public sealed record ProbeVerdict(string Path, bool Ok, string? Error, bool Cached, TimeSpan Elapsed, bool Isolated = true);

/// <summary>
/// A crash-proof first load. llama.cpp answers some inputs with an abort (GGML_ASSERT, an uncaught C++ exception,
/// a segfault) that takes the whole process down; managed validation catches the known ones, and this catches the
/// rest: the first time a model file (path, size, modification time, header digest) is used, it is loaded and
/// exercised (tokenize, decode a few tokens, read logits) in a child process, the <c>consort probe</c> command. A
/// native death there becomes one clear error naming the file and llama.cpp's last message, and the verdict is
/// cached under the Consort cache folder (<c>CONSORT_CACHE</c>, else <c>~/.cache/consort</c>, in <c>probe/</c>), so
/// the second use costs a file stat and a digest of the header.
/// </summary>
/// <remarks>
/// The child is located through <see cref="Launcher"/> (the CLI sets it to itself), else the environment variable
/// <c>CONSORT_PROBE_CLI</c> (a consort.dll or executable), else a consort.dll beside the running application.
/// Without one (a library used on its own) models load in-process, still behind the managed validation.
/// <c>CONSORT_PROBE=off</c> switches probing off.
/// </remarks>
public static class LlamaProbe
{
    /// <summary>Environment variable naming the consort CLI to probe with (consort.dll or an executable).</summary>
    public const string LauncherVariable = "CONSORT_PROBE_CLI";
    /// <summary>Environment variable that switches probing off when "off" (set in the probe child itself).</summary>
    public const string ModeVariable = "CONSORT_PROBE";
    /// <summary>Environment variable with the child's time limit in seconds (default 120).</summary>
    public const string TimeoutVariable = "CONSORT_PROBE_TIMEOUT_S";
    /// <summary>Bumped when what the probe exercises changes, so older verdicts are not trusted.</summary>
    private const int ProbeVersion = 1;
    /// <summary>Bytes of the file's start that go into its identity (the GGUF header and metadata, typically).</summary>
    private const int DigestBytes = 4 << 20;

    private static readonly object Gate = new();

    /// <summary>The consort CLI to run as the probe child (a consort.dll or an executable); the CLI sets it to itself.</summary>
    public static string? Launcher { get; set; }

    /// <summary>False switches probing off in this process (the probe child sets it).</summary>
    public static bool Enabled { get; set; } = Environment.GetEnvironmentVariable(ModeVariable) is not "off";

    /// <summary>Folder of cached verdicts.</summary>
    public static string CacheDirectory => System.IO.Path.Combine(ConsortCache.Root, "probe");

    /// <summary>The probe text: short, common characters (replaced where a vocabulary lacks them).</summary>
    public const string ProbeText = "Once upon a time";

    /// <summary>The launcher that <see cref="Ensure"/> would use, or null.</summary>
    public static string? ResolveLauncher()
    {
        if (Launcher is { Length: > 0 } l) return l;
        if (Environment.GetEnvironmentVariable(LauncherVariable) is { Length: > 0 } env) return env;
        var beside = System.IO.Path.Combine(AppContext.BaseDirectory, "consort.dll");
        return File.Exists(beside) ? beside : null;
    }

    /// <summary>
    /// Makes sure llama.cpp survives <paramref name="path"/>: returns the cached verdict, or probes in a child process
    /// and caches the verdict. Throws <see cref="ModelFileException"/> when the file kills llama.cpp (or fails to load).
    /// </summary>
    public static ProbeVerdict Ensure(string path, CancellationToken cancellationToken = default)
    {
        var verdict = Check(path, cancellationToken);
        if (!verdict.Ok) throw new ModelFileException(verdict.Path, verdict.Error ?? "llama.cpp failed on it in the first-load probe");
        return verdict;
    }

    /// <summary>Like <see cref="Ensure"/>, but returns a failed verdict instead of throwing.</summary>
    public static ProbeVerdict Check(string path, CancellationToken cancellationToken = default)
    {
        path = System.IO.Path.GetFullPath(path);
        var sw = Stopwatch.StartNew();
        string? launcher = Enabled ? ResolveLauncher() : null;
        if (launcher is null) return new ProbeVerdict(path, true, null, false, sw.Elapsed, Isolated: false);
        var identity = Identity(path);
        string cacheFile = CacheFile(identity);
        if (ReadCached(cacheFile, identity) is { } cached)
            return new ProbeVerdict(path, cached.Ok, cached.Error, true, sw.Elapsed);
        // One probe per file at a time in this process; another process may probe the same file: both verdicts agree.
        lock (Gate)
        {
            if (ReadCached(cacheFile, identity) is { } again)
                return new ProbeVerdict(path, again.Ok, again.Error, true, sw.Elapsed);
            var (ok, error, cacheable) = RunChild(launcher, path, validate: false, cancellationToken);
            if (cacheable) WriteCached(cacheFile, identity, path, ok, error, sw.Elapsed);
            return new ProbeVerdict(path, ok, error, false, sw.Elapsed);
        }
    }

    /// <summary>
    /// Runs the probe child on <paramref name="path"/> without consulting the cache. With <paramref name="validate"/>
    /// false the child skips the managed validation (tests use it to see a native crash contained).
    /// </summary>
    public static (bool Ok, string? Error, bool Cacheable) RunChild(string launcher, string path, bool validate, CancellationToken cancellationToken = default)
    {
        var psi = launcher.EndsWith(".dll", StringComparison.OrdinalIgnoreCase)
            ? new ProcessStartInfo(DotnetHost()) { ArgumentList = { launcher } }
            : new ProcessStartInfo(launcher);
        psi.ArgumentList.Add("probe");
        psi.ArgumentList.Add(path);
        if (!validate) psi.ArgumentList.Add("--no-validate");
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardError = true;
        psi.UseShellExecute = false;
        psi.Environment[ModeVariable] = "off";        // no probe inside the probe
        psi.Environment["GGML_NO_BACKTRACE"] = "1";  // ggml would otherwise run gdb on abort, for seconds
        psi.Environment["NO_COLOR"] = "1";
        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new InvalidOperationException("no process");
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            throw new ConsortException($"{path}: cannot start the first-load probe ({launcher}: {e.Message}); set {LauncherVariable} or {ModeVariable}=off", e);
        }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
            var stderrLines = new List<string>();
            var stderr = Task.Run(async () =>
            {
                while (await process.StandardError.ReadLineAsync(cancellationToken) is { } line)
                    lock (stderrLines)
                    {
                        stderrLines.Add(line);
                        if (stderrLines.Count > 400) stderrLines.RemoveRange(0, 200); // the tail is what matters
                    }
            }, cancellationToken);
            var limit = TimeSpan.FromSeconds(double.TryParse(Environment.GetEnvironmentVariable(TimeoutVariable), NumberStyles.Float, CultureInfo.InvariantCulture, out var s) && s > 0 ? s : 120);
            try
            {
                if (!process.WaitForExitAsync(cancellationToken).Wait(limit))
                {
                    Kill(process);
                    return (false, $"the first-load probe did not finish within {limit.TotalSeconds:0} s (set {TimeoutVariable} for large models)", false);
                }
            }
            catch (AggregateException e) when (e.InnerException is OperationCanceledException oce)
            {
                Kill(process);
                throw oce;
            }
            try { Task.WaitAll([stdout, stderr], TimeSpan.FromSeconds(5)); } catch (AggregateException) { }
            int code = process.ExitCode;
            string outText = stdout.IsCompletedSuccessfully ? stdout.Result : "";
            string[] errLines;
            lock (stderrLines) errLines = [.. stderrLines];
            if (code == 0 && outText.Contains("\"ok\":true", StringComparison.Ordinal)) return (true, null, true);
            if (code == 1 && errLines.LastOrDefault(l => l.StartsWith("error: ", StringComparison.Ordinal)) is { } managed)
            {
                // A clean failure in the child (llama.cpp refused to load it): deterministic for this file and build.
                string why = managed["error: ".Length..];
                if (why.StartsWith(path + ": ", StringComparison.Ordinal)) why = why[(path.Length + 2)..];
                return (false, why, true);
            }
            if (code is >= 128 and < 256 || code < 0)
                return (false, $"llama.cpp crashed on it ({SignalName(code)}) in the first-load probe, so it is not loaded: {LastNativeMessage(errLines)}", true);
            return (false, $"the first-load probe failed (exit code {code}): {LastNativeMessage(errLines)}", false);
        }
    }

    /// <summary>
    /// The probe itself, run inside the child: loads the model through the same path as every other load, encodes
    /// <see cref="ProbeText"/>, decodes a few tokens greedily and reads their logits. llama.cpp's log goes to stderr
    /// so that the parent can quote its last message if the process dies.
    /// </summary>
    /// <returns>A JSON report (ok, timings, tokens, whether all logits were finite).</returns>
    public static JsonObject RunInProcess(string path, bool validate = true)
    {
        Enabled = false;
        LlamaNative.EnsureInitialized();
        NativeLogConfig.llama_log_set((LLamaLogLevel level, string message) =>
        {
            if (level >= LLamaLogLevel.Info) Console.Error.Write(message);
        });
        var sw = Stopwatch.StartNew();
        using var model = LlamaModelFactory.LoadTokenModel(new LlamaModelOptions
        {
            Path = path, ContextSize = 64, MaxSequences = 1, BatchSize = 64, Threads = 1, Unencodable = UnencodableMode.Replace,
            SkipSemanticValidation = !validate,
        });
        double loadMs = sw.Elapsed.TotalMilliseconds;
        var tokenizer = model.LlamaTokenizer;
        var prompt = tokenizer.Encode(ProbeText, addBos: tokenizer.AddsBos).Take(16).ToList();
        if (prompt.Count == 0) prompt.Add(tokenizer.Bos ?? 0);
        var seq = model.StartAsync(prompt).AsTask().GetAwaiter().GetResult();
        var generated = new List<int>();
        bool finite = true;
        try
        {
            for (int i = 0; i < 3 && seq.Tokens.Count < model.SequenceLength; i++)
            {
                var next = seq.Next;
                finite &= next.Logits is { } l && l.All(float.IsFinite);
                int token = next.ArgMax();
                generated.Add(token);
                seq.AppendAsync([token]).AsTask().GetAwaiter().GetResult();
            }
        }
        finally
        {
            seq.Dispose();
        }
        string text = tokenizer.Decode(generated);
        return new JsonObject
        {
            ["ok"] = true,
            ["path"] = path,
            ["load_ms"] = Math.Round(loadMs, 1),
            ["total_ms"] = Math.Round(sw.Elapsed.TotalMilliseconds, 1),
            ["prompt_tokens"] = prompt.Count,
            ["generated"] = MessageText.Escape(text, 80),
            ["finite_logits"] = finite,
        };
    }

    /// <summary>What identifies a file for the cache: path, size, modification time, a digest of its start, and the
    /// llama.cpp build (a new build may behave differently).</summary>
    public static string Identity(string path)
    {
        var info = Limits.ResolvedFile(path);
        if (!info.Exists) throw new ModelFileException(path, "file not found");
        string digest;
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16))
        {
            var buffer = new byte[(int)Math.Min(info.Length, DigestBytes)];
            fs.ReadExactly(buffer);
            digest = Convert.ToHexStringLower(SHA256.HashData(buffer));
        }
        string llama = typeof(NativeApi).Assembly.GetName().Version?.ToString() ?? "?";
        return string.Join("|", "v" + ProbeVersion, path, info.Length.ToString(CultureInfo.InvariantCulture),
            info.LastWriteTimeUtc.Ticks.ToString(CultureInfo.InvariantCulture), digest, "llamasharp " + llama);
    }

    /// <summary>The cache file of a verdict for <paramref name="identity"/>.</summary>
    internal static string CacheFile(string identity, string? cacheRoot = null) =>
        System.IO.Path.Combine(cacheRoot is null ? CacheDirectory : System.IO.Path.Combine(cacheRoot, "probe"),
            Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(identity)))[..32] + ".json");

    /// <summary>Records a verdict as a probe would, in the cache under <paramref name="cacheRoot"/> (tests use it to
    /// stand in for a file that kills llama.cpp, since the managed validation stops every known one earlier).</summary>
    internal static void Record(string path, bool ok, string? error, string? cacheRoot = null)
    {
        path = System.IO.Path.GetFullPath(path);
        var identity = Identity(path);
        WriteCached(CacheFile(identity, cacheRoot), identity, path, ok, error, TimeSpan.Zero);
    }

    private static (bool Ok, string? Error)? ReadCached(string file, string identity)
    {
        try
        {
            if (!File.Exists(file)) return null;
            if (JsonNode.Parse(File.ReadAllText(file)) is not JsonObject o || (string?)o["identity"] != identity) return null;
            return ((bool?)o["ok"] ?? false, (string?)o["error"]);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException or InvalidOperationException or FormatException)
        {
            return null; // a broken cache entry is as good as none: probe again
        }
    }

    private static void WriteCached(string file, string identity, string path, bool ok, string? error, TimeSpan elapsed)
    {
        try
        {
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(file)!);
            var o = new JsonObject
            {
                ["identity"] = identity, ["path"] = path, ["ok"] = ok, ["error"] = error,
                ["probe_ms"] = Math.Round(elapsed.TotalMilliseconds, 1), ["checked"] = DateTimeOffset.UtcNow.ToString("O", CultureInfo.InvariantCulture),
            };
            string tmp = file + $".{Environment.ProcessId}.tmp";
            File.WriteAllText(tmp, o.ToJsonString());
            File.Move(tmp, file, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // No cache (read-only home): the next use probes again, which is slower but safe.
        }
    }

    private static string DotnetHost()
    {
        var self = Environment.ProcessPath;
        return self is not null && System.IO.Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : "dotnet";
    }

    private static void Kill(Process p)
    {
        try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
        try { p.WaitForExit(5000); } catch (InvalidOperationException) { }
    }

    private static string SignalName(int code) => (code & 0x7F) switch
    {
        6 => "SIGABRT, exit " + code,
        11 => "SIGSEGV, exit " + code,
        8 => "SIGFPE, exit " + code,
        4 => "SIGILL, exit " + code,
        7 => "SIGBUS, exit " + code,
        9 => "SIGKILL (out of memory?), exit " + code,
        _ => "exit " + code,
    };

    /// <summary>llama.cpp's last meaningful line: an assert or exception text if there is one, else its last log line.</summary>
    internal static string LastNativeMessage(IReadOnlyList<string> lines)
    {
        static bool Noise(string l) => l.Length == 0 || l.Contains("No such file or directory", StringComparison.Ordinal) || l.StartsWith('#')
            || l.StartsWith("[New LWP", StringComparison.Ordinal) || l.StartsWith("[Thread debugging", StringComparison.Ordinal)
            || l.Contains("ptrace", StringComparison.Ordinal) || l.StartsWith("Using host libthread_db", StringComparison.Ordinal);
        var useful = lines.Select(l => l.Trim()).Where(l => !Noise(l)).ToList();
        int what = useful.FindLastIndex(l => l.StartsWith("what():", StringComparison.Ordinal));
        if (what >= 0)
        {
            string kind = what > 0 && useful[what - 1].StartsWith("terminate called", StringComparison.Ordinal)
                ? useful[what - 1].Split('\'').ElementAtOrDefault(1) ?? "C++ exception" : "C++ exception";
            return MessageText.Escape($"{kind}: {useful[what]["what():".Length..].Trim()}", 300);
        }
        var assert = useful.LastOrDefault(l => l.Contains("GGML_ASSERT", StringComparison.Ordinal) || l.Contains("GGML_ABORT", StringComparison.Ordinal)
                                               || l.Contains(": error", StringComparison.OrdinalIgnoreCase) || l.Contains("unsupported", StringComparison.Ordinal));
        if (assert is not null) return MessageText.Escape(assert, 300);
        return useful.Count > 0 ? "no message; llama.cpp's last log line: " + MessageText.Escape(useful[^1], 300) : "no message from llama.cpp";
    }
}
