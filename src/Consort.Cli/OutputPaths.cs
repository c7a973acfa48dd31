namespace Consort.Cli;

/// <summary>
/// Checks output paths before any work starts, so a long run or training never fails at its end on a path:
/// a folder that is a file, a file that is a folder, a parent that is missing or not writable.
/// </summary>
public static class OutputPaths
{
    /// <summary>An output folder (created later when missing): not a file, and under a writable existing folder.</summary>
    /// <param name="path">The folder.</param>
    /// <param name="what">The option that named it (e.g. "--out").</param>
    /// <returns>The full path.</returns>
    /// <exception cref="ConsortException">The problem, naming the option and path.</exception>
    public static string CheckFolder(string path, string what)
    {
        var full = Path.GetFullPath(path);
        if (File.Exists(full)) throw new ConsortException($"{what} {path}: is a file; give a folder");
        var existing = NearestExisting(full, what, path);
        CheckWritable(existing, what, path);
        return full;
    }

    /// <summary>An output file: not a folder, its folder exists and is writable.</summary>
    /// <param name="path">The file.</param>
    /// <param name="what">The option that named it.</param>
    /// <param name="createParent">Create a missing parent folder instead of refusing.</param>
    /// <returns>The full path.</returns>
    /// <exception cref="ConsortException">The problem, naming the option and path.</exception>
    public static string CheckFile(string path, string what, bool createParent = false)
    {
        var full = Path.GetFullPath(path);
        if (Directory.Exists(full)) throw new ConsortException($"{what} {path}: is a folder; give a file path");
        var parent = Path.GetDirectoryName(full)!;
        if (!Directory.Exists(parent))
        {
            if (File.Exists(parent)) throw new ConsortException($"{what} {path}: {parent} is a file, not a folder");
            if (!createParent) throw new ConsortException($"{what} {path}: folder {parent} does not exist; create it first");
            CheckWritable(NearestExisting(parent, what, path), what, path);
            Directory.CreateDirectory(parent);
        }
        CheckWritable(parent, what, path);
        return full;
    }

    /// <summary>A model output named by its path: a <c>.gguf</c> file (its folder created when missing) or a folder (safetensors).</summary>
    public static string CheckModelOutput(string path, string what) =>
        path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase) ? CheckFile(path, what, createParent: true) : CheckFolder(path, what);

    /// <summary>Writes <paramref name="text"/> (UTF-8) to <paramref name="path"/> through a temporary file, so readers never see half of it.</summary>
    public static void WriteAtomically(string path, string text)
    {
        using var file = new Consort.Formats.AtomicFile(path);
        using (var w = new StreamWriter(file.Stream, new System.Text.UTF8Encoding(false), leaveOpen: true)) w.Write(text);
        file.Commit();
    }

    private static string NearestExisting(string full, string what, string path)
    {
        for (var dir = Path.GetDirectoryName(full); dir is not null; dir = Path.GetDirectoryName(dir))
        {
            if (Directory.Exists(dir)) return dir;
            if (File.Exists(dir)) throw new ConsortException($"{what} {path}: {dir} is a file, not a folder");
        }
        throw new ConsortException($"{what} {path}: no existing folder above it");
    }

    private static void CheckWritable(string folder, string what, string path)
    {
        var probe = Path.Combine(folder, $".consort-write-test-{Environment.ProcessId}-{Guid.NewGuid():N}");
        try
        {
            using (File.Create(probe, 1, FileOptions.DeleteOnClose)) { }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConsortException($"{what} {path}: cannot write in {folder} ({e.Message})", e);
        }
    }
}
