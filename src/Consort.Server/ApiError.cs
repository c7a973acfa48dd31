using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace Consort.Server;

/// <summary>A request failure answered in OpenAI's error shape <c>{"error":{"message","type","param","code"}}</c>.</summary>
public sealed class ApiError(int status, string message, string type = "invalid_request_error", string? param = null, string? code = null) : Exception(message)
{
    /// <summary>HTTP status.</summary>
    public int Status { get; } = status;
    /// <summary>Error type (invalid_request_error, authentication_error, rate_limit_error, server_error, timeout).</summary>
    public string Type { get; } = type;
    /// <summary>Request field at fault, if any.</summary>
    public string? Param { get; } = param;
    /// <summary>Machine-readable code, if any.</summary>
    public string? Code { get; } = code;

    /// <summary>Seconds the client should wait before retrying (sent as <c>Retry-After</c>), if any.</summary>
    public int? RetryAfterSeconds { get; init; }

    /// <summary>The JSON body.</summary>
    public JsonObject ToJson() => new()
    {
        ["error"] = new JsonObject { ["message"] = Message, ["type"] = Type, ["param"] = Param, ["code"] = Code },
    };

    /// <summary>Writes the error unless the response has started.</summary>
    public async Task WriteAsync(HttpResponse response)
    {
        if (response.HasStarted) return;
        response.StatusCode = Status;
        if (RetryAfterSeconds is { } ra) response.Headers.RetryAfter = ra.ToString(System.Globalization.CultureInfo.InvariantCulture);
        response.ContentType = "application/json";
        await response.WriteAsync(ToJson().ToJsonString());
    }
}
