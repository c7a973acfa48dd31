namespace Consort.Formats;

/// <summary>
/// A file written under a temporary name beside its destination and renamed into place only on
/// <see cref="Commit"/>: a crash or error never leaves a half-written output, and never replaces an input.
/// </summary>
public sealed class AtomicFile : IDisposable
{
    private bool _committed;

    /// <summary>Opens a temporary file for <paramref name="destination"/>; with <paramref name="direct"/>, written
    /// around the page cache where the file system allows (<see cref="DirectFileStream"/>: large outputs that are
    /// written once and sequentially).</summary>
    public AtomicFile(string destination, bool direct = false)
    {
        Destination = Path.GetFullPath(destination);
        var dir = Path.GetDirectoryName(Destination)!;
        Directory.CreateDirectory(dir);
        TempPath = Path.Combine(dir, $".{Path.GetFileName(Destination)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        _direct = direct ? DirectFileStream.TryCreate(TempPath) : null;
        if (_direct is null) _stream = new WritebackStream(new FileStream(TempPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20));
    }

    private readonly DirectFileStream? _direct;
    /// <summary>Whether the file is being written around the page cache.</summary>
    public bool IsDirect => _direct is not null;

    /// <summary>Where the file ends up.</summary>
    public string Destination { get; }
    /// <summary>The temporary file being written.</summary>
    public string TempPath { get; }
    private readonly WritebackStream? _stream;

    /// <summary>Stream over the temporary file (writes start reaching the disk as they go, see <see cref="WritebackStream"/>;
    /// sequential only when direct).</summary>
    public Stream Stream => (Stream?)_direct ?? _stream!;

    /// <summary>Flushes to disk and renames the file into place.</summary>
    public void Commit()
    {
        if (_direct is not null)
        {
            _direct.Complete();
            _direct.Dispose();
        }
        else
        {
            _stream!.Inner.Flush(flushToDisk: true);
            _stream.Dispose();
        }
        File.Move(TempPath, Destination, overwrite: true);
        _committed = true;
    }

    /// <summary>Deletes the temporary file unless committed.</summary>
    public void Dispose()
    {
        _direct?.Dispose();
        _stream?.Dispose();
        if (!_committed) try { File.Delete(TempPath); } catch (IOException) { }
    }
}
