namespace Consort.Formats;

/// <summary>
/// A file written under a temporary name beside its destination and renamed into place only on
/// <see cref="Commit"/>: a crash or error never leaves a half-written output, and never replaces an input.
/// </summary>
public sealed class AtomicFile : IDisposable
{
    private bool _committed;

    /// <summary>Opens a temporary file for <paramref name="destination"/>.</summary>
    public AtomicFile(string destination)
    {
        Destination = Path.GetFullPath(destination);
        var dir = Path.GetDirectoryName(Destination)!;
        Directory.CreateDirectory(dir);
        TempPath = Path.Combine(dir, $".{Path.GetFileName(Destination)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        _stream = new WritebackStream(new FileStream(TempPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20));
    }

    /// <summary>Where the file ends up.</summary>
    public string Destination { get; }
    /// <summary>The temporary file being written.</summary>
    public string TempPath { get; }
    private readonly WritebackStream _stream;

    /// <summary>Stream over the temporary file (writes start reaching the disk as they go, see <see cref="WritebackStream"/>).</summary>
    public Stream Stream => _stream;

    /// <summary>Flushes to disk and renames the file into place.</summary>
    public void Commit()
    {
        _stream.Inner.Flush(flushToDisk: true);
        _stream.Dispose();
        File.Move(TempPath, Destination, overwrite: true);
        _committed = true;
    }

    /// <summary>Deletes the temporary file unless committed.</summary>
    public void Dispose()
    {
        _stream.Dispose();
        if (!_committed) try { File.Delete(TempPath); } catch (IOException) { }
    }
}
