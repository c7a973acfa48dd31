using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Consort.Methods.Weight.Search;

/// <summary>One evaluated candidate of a weight search: its key, its coordinates and what it scored.</summary>
/// <param name="Key">Canonical text of the candidate (what makes two candidates the same).</param>
/// <param name="Point">The candidate's coordinates (coefficients, densities, ...).</param>
/// <param name="Score">Dev score (higher is better).</param>
/// <param name="Seconds">Time the evaluation took.</param>
public sealed record EvaluatedCandidate(string Key, double[] Point, double Score, double Seconds);

/// <summary>
/// The evaluations of a search, appended one JSON line per candidate to a file as they finish, and read back on the next
/// run. Searches here are deterministic for their seed, so replaying one with this memo reproduces every step and
/// evaluates only what the killed run had not finished: a search resumes after a kill (even SIGKILL) without saving the
/// optimizer's state. A torn last line (the kill hit a write) is ignored.
/// </summary>
public sealed class EvaluationLog
{
    private readonly Dictionary<string, EvaluatedCandidate> _done = new(StringComparer.Ordinal);
    private readonly object _gate = new();

    /// <summary>Opens (creating its folder) or reads back the log at <paramref name="path"/>; null keeps it in memory only.</summary>
    /// <param name="path">The JSONL file, or null.</param>
    /// <param name="signature">What the search is (method, members, settings, seed): a log written for another search is not reused.</param>
    public EvaluationLog(string? path, string signature)
    {
        Path = path; Signature = signature;
        if (path is null) return;
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
        if (!File.Exists(path)) { File.WriteAllText(path, Header() + "\n"); return; }
        var lines = File.ReadAllLines(path);
        if (lines.Length == 0 || !IsHeader(lines[0]))
        {
            // Another search (or an older one with different settings) wrote it: keep it aside and start fresh.
            File.Move(path, path + ".old", overwrite: true);
            File.WriteAllText(path, Header() + "\n");
            return;
        }
        foreach (var line in lines.Skip(1))
        {
            if (line.Length == 0) continue;
            try
            {
                var o = JsonNode.Parse(line)!.AsObject();
                var c = new EvaluatedCandidate((string)o["key"]!, o["point"]!.AsArray().Select(v => (double)v!).ToArray(), (double)o["score"]!, (double)o["seconds"]!);
                _done[c.Key] = c;
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or NullReferenceException or FormatException) { }
        }
        Resumed = _done.Count;
    }

    /// <summary>The file, or null.</summary>
    public string? Path { get; }
    /// <summary>What the search is.</summary>
    public string Signature { get; }
    /// <summary>Evaluations read back from an earlier run.</summary>
    public int Resumed { get; }
    /// <summary>Evaluations run in this process.</summary>
    public int Evaluated { get; private set; }
    /// <summary>Every evaluation known, in the order they were recorded.</summary>
    public IReadOnlyList<EvaluatedCandidate> All { get { lock (_gate) return [.. _done.Values]; } }

    /// <summary>The canonical key of a point (round-trip doubles, so equal points give equal keys).</summary>
    public static string KeyOf(IEnumerable<double> point) => string.Join(",", point.Select(v => v.ToString("R", CultureInfo.InvariantCulture)));

    /// <summary>
    /// The score of <paramref name="point"/>: from the log when an earlier run evaluated it, else from
    /// <paramref name="evaluate"/> (then recorded). <paramref name="key"/> defaults to <see cref="KeyOf"/>.
    /// </summary>
    public async ValueTask<double> ScoreAsync(double[] point, Func<double[], CancellationToken, ValueTask<double>> evaluate, CancellationToken ct, string? key = null)
    {
        key ??= KeyOf(point);
        lock (_gate) if (_done.TryGetValue(key, out var hit)) return hit.Score;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        double score = await evaluate(point, ct).ConfigureAwait(false);
        var c = new EvaluatedCandidate(key, (double[])point.Clone(), score, Math.Round(sw.Elapsed.TotalSeconds, 3));
        lock (_gate)
        {
            _done[key] = c;
            Evaluated++;
            if (Path is not null)
            {
                var line = new JsonObject
                {
                    ["key"] = key, ["point"] = new JsonArray(c.Point.Select(v => (JsonNode)JsonValue.Create(v)!).ToArray()),
                    ["score"] = double.IsFinite(score) ? score : -1e308, ["seconds"] = c.Seconds,
                };
                // One write per line: a kill leaves at most a torn last line, which the reader skips.
                using var f = new FileStream(Path, FileMode.Append, FileAccess.Write, FileShare.Read);
                var bytes = Encoding.UTF8.GetBytes(line.ToJsonString() + "\n");
                f.Write(bytes);
                f.Flush(flushToDisk: true);
            }
        }
        return score;
    }

    private string Header() => new JsonObject { ["consort_search"] = Signature }.ToJsonString();

    private bool IsHeader(string line)
    {
        try { return (string?)JsonNode.Parse(line)?["consort_search"] == Signature; }
        catch (JsonException) { return false; }
    }
}
