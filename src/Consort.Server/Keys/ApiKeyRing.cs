using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Consort.Server.Keys;

/// <summary>Limits of one key: rate limits per minute, a token and cost budget per period, the models it may call.</summary>
public sealed record KeyLimits
{
    /// <summary>Requests per minute (null: no limit).</summary>
    public long? RequestsPerMinute { get; init; }
    /// <summary>Tokens (prompt + completion) per minute.</summary>
    public long? TokensPerMinute { get; init; }
    /// <summary>Tokens per budget period.</summary>
    public long? BudgetTokens { get; init; }
    /// <summary>Cost per budget period (in the models' price unit).</summary>
    public decimal? BudgetCost { get; init; }
    /// <summary>Length of the budget period.</summary>
    public BudgetPeriod Period { get; init; } = BudgetPeriod.Month;
    /// <summary>Models the key may call (null: all).</summary>
    public IReadOnlySet<string>? Models { get; init; }
}

/// <summary>A fixed budget period: calendar month, or a fixed number of seconds since the Unix epoch.</summary>
/// <param name="Seconds">Length in seconds; 0 means the calendar month (UTC).</param>
public readonly record struct BudgetPeriod(long Seconds)
{
    /// <summary>The calendar month (UTC).</summary>
    public static BudgetPeriod Month => new(0);

    /// <summary>The index of the period holding <paramref name="now"/> and when it ends.</summary>
    public (long Index, DateTimeOffset End) At(DateTimeOffset now)
    {
        if (Seconds == 0)
        {
            var start = new DateTimeOffset(now.Year, now.Month, 1, 0, 0, 0, TimeSpan.Zero);
            return (now.Year * 12L + now.Month - 1, start.AddMonths(1));
        }
        long t = now.ToUnixTimeSeconds();
        long index = t / Seconds;
        return (index, DateTimeOffset.FromUnixTimeSeconds((index + 1) * Seconds));
    }

    /// <summary>Reads "minute", "hour", "day", "week", "month" or a number of seconds.</summary>
    public static BudgetPeriod Parse(JsonNode node, string where) => node switch
    {
        JsonValue v when v.TryGetValue<string>(out var s) => s.ToLowerInvariant() switch
        {
            "minute" => new(60), "hour" => new(3600), "day" => new(86400), "week" => new(7 * 86400), "month" => Month,
            _ => throw new ConfigException($"{where}: 'period' '{s}' is not one of minute, hour, day, week, month (or a number of seconds)"),
        },
        JsonValue v when v.TryGetValue<double>(out var d) && d >= 1 => new((long)d),
        _ => throw new ConfigException($"{where}: 'period' must be minute, hour, day, week, month or seconds >= 1, got {node.ToJsonString()}"),
    };

    /// <inheritdoc />
    public override string ToString() => Seconds switch { 0 => "month", 60 => "minute", 3600 => "hour", 86400 => "day", 604800 => "week", var s => $"{s} s" };
}

/// <summary>One accepted key: its name (what logs, metrics and the admin endpoint show) and limits. The key itself is kept only as a hash.</summary>
public sealed record ApiKey(string Name, KeyLimits Limits, bool Admin);

/// <summary>
/// The accepted keys, held as SHA-256 hashes and compared in constant time (every stored hash is compared, so the
/// time does not depend on which key matched or how much of it). Sources: <see cref="ServerOptions.ApiKeys"/>,
/// <c>CONSORT_API_KEYS</c>, and a keys file: plain (one key per line) or JSON
/// <c>{"keys": [{"name", "key" | "key_env" | "key_sha256", "models", "rpm", "tpm", "budget": {"tokens", "cost", "period"}, "admin"}]}</c>.
/// </summary>
public sealed class ApiKeyRing
{
    private readonly (byte[] Hash, ApiKey Key)[] _keys;

    private ApiKeyRing((byte[], ApiKey)[] keys) { _keys = keys; }

    /// <summary>Number of keys.</summary>
    public int Count => _keys.Length;
    /// <summary>The keys' names and limits.</summary>
    public IEnumerable<ApiKey> Keys => _keys.Select(k => k.Key);

    /// <summary>True when the file's first non-blank character is '{' (the JSON form).</summary>
    public static bool IsJsonFile(string path)
    {
        using var r = new StreamReader(path);
        int c;
        while ((c = r.Read()) >= 0) if (!char.IsWhiteSpace((char)c)) return c == '{';
        return false;
    }

    /// <summary>Loads every key source of <paramref name="options"/>.</summary>
    public static ApiKeyRing Load(ServerOptions options)
    {
        var list = new List<(byte[], ApiKey)>();
        foreach (var k in options.LoadKeys()) list.Add((Hash(k), new ApiKey("key-" + Convert.ToHexStringLower(Hash(k))[..8], new KeyLimits(), false)));
        if (options.ApiKeysFile is { } file && IsJsonFile(file)) list.AddRange(ParseJson(file));
        var dupName = list.GroupBy(k => k.Item2.Name).FirstOrDefault(g => g.Count() > 1);
        if (dupName is not null) throw new ConfigException($"keys: two keys are named '{dupName.Key}'");
        var dupKey = list.GroupBy(k => Convert.ToHexString(k.Item1)).FirstOrDefault(g => g.Count() > 1);
        if (dupKey is not null) throw new ConfigException($"keys: the same key is listed twice ({string.Join(", ", dupKey.Select(k => k.Item2.Name))})");
        return new ApiKeyRing([.. list]);
    }

    private static IEnumerable<(byte[], ApiKey)> ParseJson(string file)
    {
        string where = Path.GetFileName(file);
        JsonObject root;
        try
        {
            if (new FileInfo(file).Length > Limits.MaxConfigBytes) throw new ConfigException($"{where}: a keys file larger than {Limits.MaxConfigBytes:N0} bytes");
            // Depth bounded and duplicate keys refused, as for every config file.
            root = JsonNode.Parse(File.ReadAllText(file), documentOptions: new JsonDocumentOptions
                   {
                       CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true, MaxDepth = Limits.MaxDocumentDepth, AllowDuplicateProperties = false,
                   }) as JsonObject
                   ?? throw new ConfigException($"{where}: a keys file must be a JSON object {{\"keys\": [...]}}");
        }
        catch (JsonException e)
        {
            // The parser's message may quote the text, which may hold a key: report the position only.
            throw new ConfigException($"{where}: invalid JSON at line {(e.LineNumber ?? 0) + 1}", null);
        }
        foreach (var (k, _) in root)
            if (k != "keys") throw new ConfigException($"{where}: unknown key '{k}'; valid keys: keys");
        if (root["keys"] is not JsonArray arr) throw new ConfigException($"{where}: 'keys' must be a list");
        string[] valid = ["name", "key", "key_env", "key_sha256", "models", "rpm", "tpm", "budget", "admin"];
        for (int i = 0; i < arr.Count; i++)
        {
            string at = $"{where}: keys[{i}]";
            if (arr[i] is not JsonObject o) throw new ConfigException($"{at}: must be an object");
            foreach (var (k, _) in o)
                if (!valid.Contains(k)) throw new ConfigException($"{at}: unknown key '{k}'; valid keys: {string.Join(", ", valid)}");
            string name = Str(o, "name", at) ?? throw new ConfigException($"{at}: 'name' is required (logs and metrics show the name, never the key)");
            at = $"{where}: key '{name}'";
            int sources = new[] { "key", "key_env", "key_sha256" }.Count(o.ContainsKey);
            if (sources != 1) throw new ConfigException($"{at}: give exactly one of 'key', 'key_env', 'key_sha256'");
            byte[] hash;
            if (Str(o, "key", at) is { } plain)
            {
                if (plain.Length < 8) throw new ConfigException($"{at}: 'key' is shorter than 8 characters");
                hash = Hash(plain);
            }
            else if (Str(o, "key_env", at) is { } env)
                hash = Hash(Environment.GetEnvironmentVariable(env) is { Length: > 0 } v ? v : throw new ConfigException($"{at}: environment variable '{env}' is not set"));
            else
            {
                string hex = Str(o, "key_sha256", at)!;
                try { hash = Convert.FromHexString(hex); }
                catch (FormatException) { hash = []; }
                if (hash.Length != 32) throw new ConfigException($"{at}: 'key_sha256' must be 64 hex digits (sha256sum of the key)");
            }
            var limits = new KeyLimits
            {
                RequestsPerMinute = Limit(o, "rpm", at),
                TokensPerMinute = Limit(o, "tpm", at),
                Models = o["models"] switch
                {
                    null => null,
                    JsonArray ms when ms.All(m => m is JsonValue mv && mv.TryGetValue<string>(out _)) => ms.Select(m => m!.GetValue<string>()).ToHashSet(StringComparer.Ordinal),
                    var other => throw new ConfigException($"{at}: 'models' must be a list of model names, got {other.ToJsonString()}"),
                },
            };
            if (o["budget"] is { } b)
            {
                if (b is not JsonObject bo) throw new ConfigException($"{at}: 'budget' must be an object {{\"tokens\", \"cost\", \"period\"}}");
                foreach (var (k, _) in bo)
                    if (k is not ("tokens" or "cost" or "period")) throw new ConfigException($"{at}: budget: unknown key '{k}'; valid keys: tokens, cost, period");
                limits = limits with
                {
                    BudgetTokens = Limit(bo, "tokens", at + ": budget"),
                    BudgetCost = bo["cost"] is { } c ? (c is JsonValue cv && cv.TryGetValue<decimal>(out var cost) && cost >= 0 ? cost : throw new ConfigException($"{at}: budget: 'cost' must be a number >= 0")) : null,
                    Period = bo["period"] is { } p ? BudgetPeriod.Parse(p, at + ": budget") : BudgetPeriod.Month,
                };
            }
            bool admin = o["admin"] is { } a && (a is JsonValue av && av.TryGetValue<bool>(out var ab) ? ab : throw new ConfigException($"{at}: 'admin' must be true or false"));
            yield return (hash, new ApiKey(name, limits, admin));
        }
    }

    private static string? Str(JsonObject o, string key, string at) => o[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        _ => throw new ConfigException($"{at}: '{key}' must be a string"),
    };

    private static long? Limit(JsonObject o, string key, string at) => o[key] switch
    {
        null => null,
        JsonValue v when v.TryGetValue<long>(out var n) && n >= 0 => n,
        var other => throw new ConfigException($"{at}: '{key}' must be an integer >= 0, got {other.ToJsonString()}"),
    };

    private static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));

    /// <summary>
    /// The key a bearer token belongs to, or null. Every stored hash is compared with
    /// <see cref="CryptographicOperations.FixedTimeEquals"/>, whatever matched.
    /// </summary>
    public ApiKey? Find(string? bearer)
    {
        if (bearer is null) return null;
        var h = Hash(bearer);
        ApiKey? found = null;
        foreach (var (hash, key) in _keys)
            if (CryptographicOperations.FixedTimeEquals(h, hash)) found = key;
        return found;
    }
}
