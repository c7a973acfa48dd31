using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;

namespace Consort.Config;

/// <summary>
/// SHA-256 of model files, computed once per file version: digests are remembered by path, size and modification
/// time, in memory and in <c>file-digests.tsv</c> under the cache root, so a rerun does not hash gigabytes again.
/// </summary>
public static class FileDigest
{
    private static readonly ConcurrentDictionary<string, string> Known = new(StringComparer.Ordinal);
    private static readonly Lock FileLock = new();
    private static bool _loaded;

    /// <summary>Lower-case hex SHA-256 of <paramref name="path"/>.</summary>
    /// <exception cref="ConsortException">The file cannot be read.</exception>
    public static string Of(string path)
    {
        var info = new FileInfo(Path.GetFullPath(path));
        if (!info.Exists) throw new ConsortException($"file not found: {info.FullName}");
        string key = $"{info.FullName}\t{info.Length}\t{info.LastWriteTimeUtc.Ticks}";
        Load();
        if (Known.TryGetValue(key, out var known)) return known;
        string digest;
        try
        {
            using var s = info.OpenRead();
            digest = Convert.ToHexStringLower(SHA256.HashData(s));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConsortException($"{info.FullName}: cannot read: {e.Message}", e);
        }
        Known[key] = digest;
        // Small files hash faster than a lookup costs; remember only the ones worth it.
        if (info.Length >= 64L << 20) Save(key, digest);
        return digest;
    }

    private static string StorePath => Path.Combine(HuggingFaceHub.CacheRoot, "file-digests.tsv");

    private static void Load()
    {
        lock (FileLock)
        {
            if (_loaded) return;
            _loaded = true;
            try
            {
                if (!File.Exists(StorePath)) return;
                foreach (var line in File.ReadLines(StorePath))
                {
                    var cut = line.LastIndexOf('\t');
                    if (cut > 0 && line.Length - cut == 65) Known[line[..cut]] = line[(cut + 1)..];
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // a cache: hash again
        }
    }

    private static void Save(string key, string digest)
    {
        lock (FileLock)
        {
            try
            {
                Directory.CreateDirectory(Path.GetDirectoryName(StorePath)!);
                File.AppendAllText(StorePath, string.Create(CultureInfo.InvariantCulture, $"{key}\t{digest}\n"));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
    }
}
