using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace Consort.Server;

/// <summary>A parsed JSON request body with typed getters that answer bad fields with a 400 naming the field.</summary>
internal sealed class RequestBody(JsonObject json)
{
    public JsonObject Json { get; } = json;

    /// <summary>Reads at most <paramref name="maxBytes"/> and parses a JSON object.</summary>
    public static async Task<RequestBody> ReadAsync(HttpRequest request, long maxBytes, CancellationToken ct)
    {
        if (request.ContentLength is { } len && len > maxBytes)
            throw new ApiError(400, $"request body is {len} bytes; the limit is {maxBytes}", code: "request_too_large");
        using var ms = new MemoryStream();
        var buffer = new byte[16384];
        int n;
        while ((n = await request.Body.ReadAsync(buffer, ct)) > 0)
        {
            if (ms.Length + n > maxBytes)
                throw new ApiError(400, $"request body exceeds the limit of {maxBytes} bytes", code: "request_too_large");
            ms.Write(buffer, 0, n);
        }
        if (ms.Length == 0) throw new ApiError(400, "request body is empty; expected a JSON object");
        try
        {
            return JsonNode.Parse(ms.GetBuffer().AsSpan(0, (int)ms.Length)) is JsonObject o
                ? new RequestBody(o)
                : throw new ApiError(400, "request body must be a JSON object");
        }
        catch (JsonException e)
        {
            throw new ApiError(400, $"request body is not valid JSON: {e.Message}");
        }
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
    public float? Float(string key) => Get<float?>(key, "a number");
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
