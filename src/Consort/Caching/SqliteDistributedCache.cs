using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Caching.Distributed;

namespace Consort.Caching;

/// <summary>
/// An <see cref="IDistributedCache"/> in one local SQLite file (WAL mode, so several processes, e.g. shards of a run,
/// share it safely). Absolute and sliding expirations are honoured; expired entries are removed as they are met.
/// </summary>
public sealed class SqliteDistributedCache : IDistributedCache, IDisposable
{
    private readonly string _connectionString;
    private readonly TimeProvider _time;

    /// <summary>Opens (creating when needed) the database at <paramref name="path"/>.</summary>
    /// <exception cref="ConsortException">The file cannot be created or is not a cache database.</exception>
    public SqliteDistributedCache(string path, TimeProvider? time = null)
    {
        Path = System.IO.Path.GetFullPath(path);
        _time = time ?? TimeProvider.System;
        _connectionString = new SqliteConnectionStringBuilder { DataSource = Path, Mode = SqliteOpenMode.ReadWriteCreate, Pooling = true, DefaultTimeout = 30 }.ToString();
        try
        {
            Directory.CreateDirectory(System.IO.Path.GetDirectoryName(Path)!);
            using var c = Open();
            Exec(c, "PRAGMA journal_mode=WAL;");
            Exec(c, "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires INTEGER, sliding INTEGER, absolute INTEGER)");
        }
        catch (Exception e) when (e is SqliteException or IOException or UnauthorizedAccessException)
        {
            throw new ConsortException($"call cache {Path}: cannot open ({e.Message}); set CONSORT_CACHE to a writable folder or use --no-cache", e);
        }
    }

    /// <summary>The database file.</summary>
    public string Path { get; }

    /// <summary>The default database: <c>calls.sqlite</c> under <c>CONSORT_CACHE</c> (else <c>~/.cache/consort</c>).</summary>
    public static string DefaultPath => System.IO.Path.Combine(Consort.Config.HuggingFaceHub.CacheRoot, "calls.sqlite");

    /// <summary>The cache a user configured: <c>CONSORT_CALL_CACHE</c> when set, else <see cref="DefaultPath"/>.</summary>
    public static SqliteDistributedCache OpenConfigured() =>
        new(Environment.GetEnvironmentVariable("CONSORT_CALL_CACHE") is { Length: > 0 } p ? p : DefaultPath);

    private SqliteConnection Open()
    {
        var c = new SqliteConnection(_connectionString);
        c.Open();
        Exec(c, "PRAGMA busy_timeout=30000;");
        return c;
    }

    private static void Exec(SqliteConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private long Now => _time.GetUtcNow().ToUnixTimeMilliseconds();

    /// <inheritdoc />
    public byte[]? Get(string key)
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT value, expires, sliding, absolute FROM entries WHERE key = $k";
        cmd.Parameters.AddWithValue("$k", key);
        using var r = cmd.ExecuteReader();
        if (!r.Read()) return null;
        var value = (byte[])r[0];
        long? expires = r.IsDBNull(1) ? null : r.GetInt64(1);
        long? sliding = r.IsDBNull(2) ? null : r.GetInt64(2);
        long? absolute = r.IsDBNull(3) ? null : r.GetInt64(3);
        r.Close();
        long now = Now;
        if (expires is { } e && e <= now)
        {
            Remove(c, key);
            return null;
        }
        if (sliding is { } s) Touch(c, key, now, s, absolute);
        return value;
    }

    /// <inheritdoc />
    public Task<byte[]?> GetAsync(string key, CancellationToken token = default)
    {
        token.ThrowIfCancellationRequested();
        return Task.FromResult(Get(key));
    }

    /// <inheritdoc />
    public void Set(string key, byte[] value, DistributedCacheEntryOptions options)
    {
        long now = Now;
        long? absolute = options.AbsoluteExpiration?.ToUnixTimeMilliseconds()
                         ?? (options.AbsoluteExpirationRelativeToNow is { } rel ? now + (long)rel.TotalMilliseconds : null);
        long? sliding = options.SlidingExpiration is { } sl ? (long)sl.TotalMilliseconds : null;
        long? expires = sliding is { } s ? Math.Min(now + s, absolute ?? long.MaxValue) : absolute;
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "INSERT OR REPLACE INTO entries (key, value, expires, sliding, absolute) VALUES ($k, $v, $e, $s, $a)";
        cmd.Parameters.AddWithValue("$k", key);
        cmd.Parameters.AddWithValue("$v", value);
        cmd.Parameters.AddWithValue("$e", (object?)expires ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$s", (object?)sliding ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$a", (object?)absolute ?? DBNull.Value);
        cmd.ExecuteNonQuery();
    }

    /// <inheritdoc />
    public Task SetAsync(string key, byte[] value, DistributedCacheEntryOptions options, CancellationToken token = default)
    {
        token.ThrowIfCancellationRequested();
        Set(key, value, options);
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public void Refresh(string key)
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT sliding, absolute FROM entries WHERE key = $k";
        cmd.Parameters.AddWithValue("$k", key);
        using var r = cmd.ExecuteReader();
        if (!r.Read() || r.IsDBNull(0)) return;
        long sliding = r.GetInt64(0);
        long? absolute = r.IsDBNull(1) ? null : r.GetInt64(1);
        r.Close();
        Touch(c, key, Now, sliding, absolute);
    }

    /// <inheritdoc />
    public Task RefreshAsync(string key, CancellationToken token = default)
    {
        Refresh(key);
        return Task.CompletedTask;
    }

    /// <inheritdoc />
    public void Remove(string key)
    {
        using var c = Open();
        Remove(c, key);
    }

    /// <inheritdoc />
    public Task RemoveAsync(string key, CancellationToken token = default)
    {
        Remove(key);
        return Task.CompletedTask;
    }

    /// <summary>Entries stored (expired ones included until met).</summary>
    public long Count()
    {
        using var c = Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*) FROM entries";
        return (long)cmd.ExecuteScalar()!;
    }

    private static void Remove(SqliteConnection c, string key)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = "DELETE FROM entries WHERE key = $k";
        cmd.Parameters.AddWithValue("$k", key);
        cmd.ExecuteNonQuery();
    }

    private static void Touch(SqliteConnection c, string key, long now, long sliding, long? absolute)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = "UPDATE entries SET expires = $e WHERE key = $k";
        cmd.Parameters.AddWithValue("$k", key);
        cmd.Parameters.AddWithValue("$e", Math.Min(now + sliding, absolute ?? long.MaxValue));
        cmd.ExecuteNonQuery();
    }

    /// <inheritdoc />
    public void Dispose() => SqliteConnection.ClearPool(new SqliteConnection(_connectionString));
}
