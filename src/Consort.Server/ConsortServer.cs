using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Consort.Server;

/// <summary>
/// An OpenAI-compatible HTTP server over Consort models and collaborations: <c>GET /v1/models</c>,
/// <c>POST /v1/chat/completions</c> (JSON or SSE), <c>POST /v1/completions</c> (logprobs where the model has token
/// access) and <c>GET /health</c>. Models are built by the caller and stay loaded for the server's lifetime.
/// </summary>
public static class ConsortServer
{
    /// <summary>
    /// Builds (does not start) the server. Call <c>StartAsync</c>/<c>RunAsync</c> on the result; with port 0 in
    /// <see cref="ServerOptions.Urls"/> read the bound address from <see cref="BoundUrls"/> after starting.
    /// </summary>
    public static WebApplication Build(ServerOptions options, IReadOnlyList<ConsortModel> models)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(models);
        options.Validate();
        if (models.Count == 0) throw new ConfigException("server: no models to serve");
        var dup = models.GroupBy(m => m.Name).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new ConfigException($"server: two models are named '{dup.Key}'");

        EnsureThreads(options.MaxConcurrentRequests);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.WebHost.UseUrls(options.Urls);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            // Our own reader answers oversized bodies with an OpenAI-shaped 400; Kestrel's limit is only a backstop.
            k.Limits.MaxRequestBodySize = options.MaxBodyBytes + 65536;
        });
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; });
        builder.Logging.SetMinimumLevel(options.MinimumLogLevel);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);

        var app = builder.Build();
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Consort.Server");
        var state = new ServerState(options, models, log);
        if (state.Keys.Count == 0)
            log.LogWarning("no API keys configured (CONSORT_API_KEYS or a keys file): the server accepts every request");

        app.Use(async (ctx, next) =>
        {
            if (ctx.Request.Path.StartsWithSegments("/v1") && !state.Authorized(ctx.Request))
            {
                await new ApiError(401, "invalid or missing API key (send 'Authorization: Bearer KEY')", "invalid_request_error", code: "invalid_api_key")
                    .WriteAsync(ctx.Response);
                return;
            }
            await next(ctx);
        });

        app.MapGet("/health", (HttpContext ctx) => ctx.Response.WriteAsync(
            new JsonObject { ["status"] = "ok", ["models"] = models.Count, ["in_flight"] = state.InFlight }.ToJsonString()));
        app.MapGet("/v1/models", (HttpContext ctx) => WriteJson(ctx, new JsonObject
        {
            ["object"] = "list",
            ["data"] = new JsonArray([.. models.Select(m => (JsonNode)ModelJson(m))]),
        }));
        app.MapGet("/v1/models/{id}", (HttpContext ctx, string id) =>
            state.Models.TryGetValue(id, out var m)
                ? WriteJson(ctx, ModelJson(m))
                : new ApiError(404, $"model '{id}' not found", param: "model", code: "model_not_found").WriteAsync(ctx.Response));
        app.MapPost("/v1/chat/completions", ctx => state.RunAsync(ctx, ChatEndpoint.HandleAsync));
        app.MapPost("/v1/completions", ctx => state.RunAsync(ctx, CompletionsEndpoint.HandleAsync));
        return app;
    }

    /// <summary>
    /// Raises the thread pool's minimum so that every admitted request can hold a thread. Local backends run native
    /// decoding synchronously (and may block on their own locks); with the default minimum (one thread per core) a burst
    /// of requests starves Kestrel's and the clients' I/O continuations until the pool slowly grows.
    /// </summary>
    public static void EnsureThreads(int concurrentRequests)
    {
        ThreadPool.GetMinThreads(out int worker, out int io);
        int want = Math.Min(512, concurrentRequests * 2 + Environment.ProcessorCount);
        if (worker < want) ThreadPool.SetMinThreads(want, Math.Max(io, want));
    }

    /// <summary>The addresses a started server listens on (useful with port 0).</summary>
    public static IReadOnlyList<string> BoundUrls(WebApplication app) => [.. app.Urls];

    internal static Task WriteJson(HttpContext ctx, JsonNode json)
    {
        ctx.Response.ContentType = "application/json";
        return ctx.Response.WriteAsync(json.ToJsonString(), ctx.RequestAborted);
    }

    private static JsonObject ModelJson(ConsortModel m) => new()
    {
        ["id"] = m.Name,
        ["object"] = "model",
        ["created"] = 0,
        ["owned_by"] = "consort",
        ["consort"] = new JsonObject
        {
            ["access"] = m.Descriptor.AccessDescription,
            ["method"] = m.Method,
            ["members"] = new JsonArray([.. m.Members.Select(x => (JsonNode)JsonValue.Create(x.Name)!)]),
            ["context_size"] = m.Descriptor.ContextSize,
        },
    };
}

/// <summary>Shared per-server state: models, keys, the concurrency gate and error mapping.</summary>
internal sealed class ServerState
{
    private readonly SemaphoreSlim _gate;
    private readonly byte[][] _keyHashes;
    private int _inFlight;

    public ServerState(ServerOptions options, IReadOnlyList<ConsortModel> models, ILogger log)
    {
        Options = options; Log = log;
        Models = models.ToDictionary(m => m.Name, StringComparer.Ordinal);
        Keys = options.LoadKeys();
        _keyHashes = [.. Keys.Select(k => SHA256.HashData(Encoding.UTF8.GetBytes(k)))];
        _gate = new SemaphoreSlim(options.MaxConcurrentRequests, options.MaxConcurrentRequests);
    }

    public ServerOptions Options { get; }
    public ILogger Log { get; }
    public Dictionary<string, ConsortModel> Models { get; }
    public HashSet<string> Keys { get; }
    public int InFlight => Volatile.Read(ref _inFlight);

    public static readonly JsonSerializerOptions TraceJson = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
    };

    public bool Authorized(HttpRequest request)
    {
        if (_keyHashes.Length == 0) return true;
        string? auth = request.Headers.Authorization;
        if (auth is null || !auth.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)) return false;
        // Compare hashes in constant time so timing reveals nothing about the keys.
        var h = SHA256.HashData(Encoding.UTF8.GetBytes(auth[7..].Trim()));
        bool ok = false;
        foreach (var k in _keyHashes) ok |= CryptographicOperations.FixedTimeEquals(h, k);
        return ok;
    }

    public ConsortModel Resolve(string name) =>
        Models.TryGetValue(name, out var m) ? m
            : throw new ApiError(404, $"model '{name}' not found; available: {string.Join(", ", Models.Keys)}", param: "model", code: "model_not_found");

    /// <summary>Runs a handler under the concurrency gate and the request timeout, mapping failures to OpenAI-shaped errors.</summary>
    public async Task RunAsync(HttpContext ctx, Func<HttpContext, ServerState, CancellationToken, Task> handler)
    {
        if (!_gate.Wait(0))
        {
            ctx.Response.Headers.RetryAfter = "1";
            await new ApiError(429, $"server is busy ({Options.MaxConcurrentRequests} requests in flight); retry later", "rate_limit_error", code: "rate_limit_exceeded")
                .WriteAsync(ctx.Response);
            return;
        }
        Interlocked.Increment(ref _inFlight);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted);
        cts.CancelAfter(Options.RequestTimeout);
        try
        {
            await handler(ctx, this, cts.Token);
        }
        catch (ApiError e)
        {
            await WriteErrorAsync(ctx, e);
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
        {
            // The client went away: inner calls were cancelled through the token; nothing to answer.
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            await WriteErrorAsync(ctx, new ApiError(504, $"request timed out after {Options.RequestTimeout.TotalSeconds:0.###} s", "timeout", code: "timeout"));
        }
        catch (ConfigException e)
        {
            await WriteErrorAsync(ctx, new ApiError(400, e.Message));
        }
        catch (ConsortException e)
        {
            Log.LogWarning("request failed: {Message}", e.Message);
            await WriteErrorAsync(ctx, new ApiError(502, e.Message, "server_error", code: "model_error"));
        }
        catch (Exception e)
        {
            Log.LogError(e, "request failed");
            await WriteErrorAsync(ctx, new ApiError(500, $"internal error: {e.GetType().Name}: {e.Message}", "server_error"));
        }
        finally
        {
            Interlocked.Decrement(ref _inFlight);
            _gate.Release();
        }
    }

    // After an SSE stream has started, the error travels as one more event (what OpenAI's clients read).
    private static async Task WriteErrorAsync(HttpContext ctx, ApiError e)
    {
        if (!ctx.Response.HasStarted) { await e.WriteAsync(ctx.Response); return; }
        if (ctx.RequestAborted.IsCancellationRequested) return;
        try
        {
            await ctx.Response.WriteAsync("data: " + e.ToJson().ToJsonString() + "\n\n");
            await ctx.Response.Body.FlushAsync();
        }
        catch (Exception) when (ctx.RequestAborted.IsCancellationRequested) { }
    }

    /// <summary>Validates <c>max_tokens</c> against the server limit.</summary>
    public int MaxTokens(RequestBody body, int fallback, bool allowZero = false)
    {
        int? v = body.Int("max_tokens") ?? body.Int("max_completion_tokens");
        string param = body.Has("max_tokens") ? "max_tokens" : "max_completion_tokens";
        if (v is null) return Math.Min(fallback, Options.MaxTokens);
        if (v < (allowZero ? 0 : 1)) throw new ApiError(400, $"'{param}' must be >= {(allowZero ? 0 : 1)}, got {v}", param: param);
        if (v > Options.MaxTokens)
            throw new ApiError(400, $"'{param}' is {v}; this server allows at most {Options.MaxTokens}", param: param, code: "max_tokens_too_large");
        return v.Value;
    }

    public static void RequireSingleChoice(RequestBody body)
    {
        if (body.Int("n") is { } n && n != 1) throw new ApiError(400, $"'n' must be 1 (got {n})", param: "n");
    }

    public static bool WantsTrace(HttpContext ctx, RequestBody body) =>
        body.Bool("consort_trace") == true ||
        ctx.Request.Headers["X-Consort-Trace"].ToString() is "1" or "true" or "True";

    public static async Task WriteEventAsync(HttpContext ctx, JsonNode json, CancellationToken ct)
    {
        await ctx.Response.WriteAsync("data: " + json.ToJsonString() + "\n\n", ct);
        await ctx.Response.Body.FlushAsync(ct);
    }

    public static void StartEventStream(HttpContext ctx)
    {
        ctx.Response.ContentType = "text/event-stream";
        ctx.Response.Headers.CacheControl = "no-cache";
        ctx.Response.Headers["X-Accel-Buffering"] = "no";
    }

    public static JsonObject Usage(long prompt, long completion) => new()
    {
        ["prompt_tokens"] = prompt,
        ["completion_tokens"] = completion,
        ["total_tokens"] = prompt + completion,
    };
}
