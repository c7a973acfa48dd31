using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace Consort.Server;

/// <summary>A parsed JSON request body with typed getters that answer bad fields with a 400 naming the field.</summary>
internal sealed class RequestBody(JsonObject json)
{
    public JsonObject Json { get; } = json;

    /// <summary>Largest body read (and discarded) to answer an oversized request cleanly; larger ones close the connection.</summary>
    public static long DrainLimit(long maxBytes) => maxBytes * 16 + (1 << 20);

    /// <summary>Reads at most <paramref name="maxBytes"/> and parses a JSON object.</summary>
    public static async Task<RequestBody> ReadAsync(HttpRequest request, long maxBytes, CancellationToken ct)
    {
        var buffer = new byte[16384];
        if (request.ContentLength is { } len && len > maxBytes)
        {
            await DrainAsync(request, len, maxBytes, buffer, ct);
            throw new ApiError(400, $"request body is {len} bytes; the limit is {maxBytes}", code: "request_too_large");
        }
        using var ms = new MemoryStream();
        int n;
        while ((n = await request.Body.ReadAsync(buffer, ct)) > 0)
        {
            if (ms.Length + n > maxBytes)
            {
                await DrainAsync(request, null, maxBytes, buffer, ct);
                throw new ApiError(400, $"request body exceeds the limit of {maxBytes} bytes", code: "request_too_large");
            }
            ms.Write(buffer, 0, n);
        }
        if (ms.Length == 0) throw new ApiError(400, "request body is empty; expected a JSON object");
        // JSON text is UTF-8; strings with invalid bytes would otherwise fail only when a field is read.
        if (!System.Text.Unicode.Utf8.IsValid(ms.GetBuffer().AsSpan(0, (int)ms.Length)))
            throw new ApiError(400, "request body is not valid UTF-8", code: "invalid_json");
        try
        {
            return JsonNode.Parse(ms.GetBuffer().AsSpan(0, (int)ms.Length)) is JsonObject o
                ? new RequestBody(o)
                : throw new ApiError(400, "request body must be a JSON object");
        }
        catch (JsonException e)
        {
            throw new ApiError(400, $"request body is not valid JSON: {e.Message}", code: "invalid_json");
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or DecoderFallbackException)
        {
            throw new ApiError(400, $"request body is not valid JSON text: {e.Message}", code: "invalid_json");
        }
    }

    /// <summary>
    /// Fields are either known (<paramref name="known"/>), or listed in <paramref name="refusedUnlessDefault"/> with the
    /// values that change nothing; anything else is refused with a 400 naming the field, so no setting is silently ignored.
    /// </summary>
    public void CheckFields(IReadOnlyCollection<string> known, IReadOnlyDictionary<string, Func<JsonNode?, bool>> refusedUnlessDefault, string endpoint)
    {
        foreach (var (key, value) in Json)
        {
            if (known.Contains(key)) continue;
            if (refusedUnlessDefault.TryGetValue(key, out var isDefault))
            {
                if (value is null || isDefault(value)) continue;
                throw new ApiError(400, $"'{key}' = {Short(value)} is not supported by this server on {endpoint}", param: key, code: "unsupported_parameter");
            }
            throw new ApiError(400, $"unknown field '{key}' for {endpoint}; known fields: {string.Join(", ", known.Concat(refusedUnlessDefault.Keys).Order())}",
                param: key, code: "unknown_parameter");
        }
    }

    private static string Short(JsonNode n)
    {
        string s = n.ToJsonString();
        return s.Length > 80 ? s[..80] + "…" : s;
    }

    /// <summary>An integer in [<paramref name="min"/>, <paramref name="max"/>], or null when absent.</summary>
    public int? IntIn(string key, int min, int max)
    {
        var v = Int(key);
        if (v is { } i && (i < min || i > max)) throw new ApiError(400, $"'{key}' must be between {min} and {max}, got {i}", param: key);
        return v;
    }

    // The client is still sending: reading the rest (bounded) lets it receive the error instead of a reset connection.
    private static async Task DrainAsync(HttpRequest request, long? length, long maxBytes, byte[] buffer, CancellationToken ct)
    {
        long limit = DrainLimit(maxBytes);
        if (length > limit) { request.HttpContext.Response.Headers.Connection = "close"; return; }
        long total = 0;
        try
        {
            int n;
            while (total <= limit && (n = await request.Body.ReadAsync(buffer, ct)) > 0) total += n;
        }
        catch (BadHttpRequestException) { }
        if (total > limit) request.HttpContext.Response.Headers.Connection = "close";
    }

    public bool Has(string key) => Json.TryGetPropertyValue(key, out var n) && n is not null;

    public string RequireString(string key)
    {
        var s = String(key);
        return string.IsNullOrEmpty(s) ? throw new ApiError(400, $"'{key}' is required", param: key) : s;
    }

    public string? String(string key) => Get<string>(key, "a string");
    public bool? Bool(string key) => Get<bool?>(key, "a boolean");
    public int? Int(string key) => Get<int?>(key, "an integer");
    public float? Float(string key) => Get<double?>(key, "a number") is { } d ? (float)d : null;
    public long? Long(string key) => Get<long?>(key, "an integer");

    public float? FloatIn(string key, float min, float max)
    {
        var v = Float(key);
        if (v is { } f && (f < min || f > max || float.IsNaN(f))) throw new ApiError(400, $"'{key}' must be between {min} and {max}, got {f}", param: key);
        return v;
    }

    /// <summary>"stop": a string or an array of strings.</summary>
    public IList<string>? Stop()
    {
        if (!Json.TryGetPropertyValue("stop", out var n) || n is null) return null;
        if (n is JsonValue v && v.TryGetValue<string>(out var s)) return s.Length > 0 ? [s] : null;
        if (n is JsonArray a && a.All(x => x is JsonValue xv && xv.TryGetValue<string>(out _)))
        {
            if (a.Count > 4) throw new ApiError(400, "'stop' may hold at most 4 sequences", param: "stop");
            return a.Select(x => x!.GetValue<string>()).Where(x => x.Length > 0).ToList();
        }
        throw new ApiError(400, "'stop' must be a string or an array of strings", param: "stop");
    }

    private T? Get<T>(string key, string what)
    {
        if (!Json.TryGetPropertyValue(key, out var n) || n is null) return default;
        try
        {
            return n.Deserialize<T>();
        }
        catch (Exception e) when (e is JsonException or FormatException or InvalidOperationException)
        {
            throw new ApiError(400, $"'{key}' must be {what}, got {n.ToJsonString()}", param: key);
        }
    }
}
