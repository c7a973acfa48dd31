using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Consort.Evaluation;

/// <summary>
/// results.jsonl: one JSON object per line, appended and flushed as each item finishes. Reading it back
/// detects a torn last line (a run killed mid-write) and cuts it away; a broken line before the end is an error.
/// </summary>
public sealed class ResultsFile : IDisposable
{
    private FileStream? _stream;
    private readonly Action? _beforeFirstWrite;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly HashSet<string> _written;

    private ResultsFile(string path, FileStream? stream, IEnumerable<string> keys, Action? beforeFirstWrite)
    {
        FilePath = path; _stream = stream; _written = new HashSet<string>(keys, StringComparer.Ordinal); _beforeFirstWrite = beforeFirstWrite;
    }

    /// <summary>The file.</summary>
    public string FilePath { get; }

    /// <summary>
    /// Opens <paramref name="path"/> for appending after repairing it: a torn last line is removed; with
    /// <paramref name="dropErrors"/>, lines recording errors are removed too (so those items run again).
    /// </summary>
    /// <param name="path">File path (created when absent).</param>
    /// <param name="dropErrors">Remove error lines so the items are retried.</param>
    /// <param name="existing">The records kept, by key.</param>
    /// <param name="beforeFirstWrite">When the file does not exist yet, it is created only at the first append, after
    /// this runs (e.g. writing run.json): a run that fails before its first item leaves nothing behind.</param>
    public static ResultsFile Open(string path, bool dropErrors, out IReadOnlyDictionary<string, ResultRecord> existing, Action? beforeFirstWrite = null)
    {
        var records = Read(path, repair: true);
        if (dropErrors && records.Any(r => r.Error is not null))
        {
            records = records.Where(r => r.Error is null).ToList();
            Rewrite(path, records);
        }
        var byKey = new Dictionary<string, ResultRecord>(StringComparer.Ordinal);
        foreach (var r in records) byKey[r.Key] = r;
        existing = byKey;
        var stream = File.Exists(path) || beforeFirstWrite is null ? new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read) : null;
        return new ResultsFile(path, stream, byKey.Keys, beforeFirstWrite);
    }

    /// <summary>
    /// Reads the records of a results file (empty when the file does not exist). With <paramref name="repair"/>,
    /// a torn last line is cut off the file; without, it is ignored.
    /// </summary>
    /// <exception cref="ConsortException">A broken line before the last one (file and line number).</exception>
    public static List<ResultRecord> Read(string path, bool repair = false)
    {
        var records = new List<ResultRecord>();
        if (!File.Exists(path)) return records;
        var bytes = File.ReadAllBytes(path);
        int end = bytes.Length;
        int lastNewline = Array.LastIndexOf(bytes, (byte)'\n');
        if (end > 0 && bytes[end - 1] != (byte)'\n')
        {
            // The last write did not finish. Keep the line only if it is a whole record (the newline was all that was lost).
            var tail = Encoding.UTF8.GetString(bytes, lastNewline + 1, end - lastNewline - 1);
            var rec = TryParse(tail);
            if (repair)
            {
                using var fs = new FileStream(path, FileMode.Open, FileAccess.Write);
                if (rec is not null) { fs.Seek(0, SeekOrigin.End); fs.WriteByte((byte)'\n'); }
                else fs.SetLength(lastNewline + 1);
                fs.Flush(true);
            }
            if (rec is not null) records.Add(rec);
            end = lastNewline + 1;
        }
        var text = Encoding.UTF8.GetString(bytes, 0, end);
        var lines = text.Split('\n');
        var parsed = new List<ResultRecord>(lines.Length);
        for (int i = 0; i < lines.Length; i++)
        {
            if (string.IsNullOrWhiteSpace(lines[i])) continue;
            parsed.Add(TryParse(lines[i]) ?? throw new ConsortException($"{path}: line {i + 1} is not a valid result record; fix or delete the file, or use another --out"));
        }
        parsed.AddRange(records);
        return parsed;
    }

    private static ResultRecord? TryParse(string line)
    {
        try
        {
            return JsonNode.Parse(line) is JsonObject o ? ResultRecord.FromJson(o) : null;
        }
        catch (Exception e) when (e is JsonException or FormatException)
        {
            return null;
        }
    }

    private static void Rewrite(string path, IEnumerable<ResultRecord> records)
    {
        var tmp = path + ".tmp";
        using (var w = new StreamWriter(tmp, false, new UTF8Encoding(false)))
        {
            foreach (var r in records) { w.Write(r.Json.ToJsonString(EvalJson.Options)); w.Write('\n'); }
            w.Flush();
            ((FileStream)w.BaseStream).Flush(true);
        }
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Appends one record and flushes it to disk. A key already written is refused (never duplicated).</summary>
    /// <returns>False when the key was already in the file.</returns>
    public async Task<bool> AppendAsync(string key, JsonObject record, CancellationToken cancellationToken = default)
    {
        record["key"] = key;
        // One write of the whole line, so a kill leaves at most one torn line at the end.
        var bytes = Encoding.UTF8.GetBytes(record.ToJsonString(EvalJson.Options) + "\n");
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!_written.Add(key)) return false;
            if (_stream is null)
            {
                _beforeFirstWrite?.Invoke();
                _stream = new FileStream(FilePath, FileMode.Append, FileAccess.Write, FileShare.Read);
            }
            await _stream.WriteAsync(bytes, CancellationToken.None).ConfigureAwait(false);
            _stream.Flush(true);
            return true;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _stream?.Dispose();
        _gate.Dispose();
    }
}
