using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Consort.Gateway;
using Consort.Server.Keys;
using Consort.Server.State;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;

namespace Consort.Server;

/// <summary>What the server knows about one request: its id, key, model, usage and timings (logged once at the end).</summary>
internal sealed class RequestInfo
{
    public required string Id { get; init; }
    public ApiKey? Key { get; set; }
    public string? Model { get; set; }
    public string Endpoint { get; set; } = "";
    public long PromptTokens { get; set; }
    public long CompletionTokens { get; set; }
    public decimal? Cost { get; set; }
    public TimeSpan QueueWait { get; set; }
    public bool Recorded { get; set; }

    public static RequestInfo Of(HttpContext ctx) => (RequestInfo)ctx.Items[typeof(RequestInfo)]!;
}

/// <summary>Shared per-server state: models, keys and their limits, the request queue, shutdown, and error mapping.</summary>
internal sealed class ServerState : IDisposable
{
    private static int _instances;
    private readonly CancellationTokenSource _shutdown = new();
    private int _stopping;
    private readonly bool _ownsRedis;

    public ServerState(ServerOptions options, IReadOnlyList<ConsortModel> models, IReadOnlyDictionary<string, IEmbeddingGenerator<string, Embedding<float>>> embedders, ILogger log,
        RedisState? redis = null)
    {
        Options = options; Log = log;
        Models = models.ToDictionary(m => m.Name, StringComparer.Ordinal);
        Embedders = embedders;
        Keys = ApiKeyRing.Load(options);
        Gate = new RequestGate(options.MaxConcurrentRequests, options.MaxQueue, options.QueueTimeout);
        // A state connected before the models were built (their call cache lives in it) is adopted; else connect here.
        if (redis is not null) { redis.Log = log; Redis = redis; }
        else if (options.Redis is { } connection) { Redis = RedisState.Connect(connection, options.RedisPrefix, log); _ownsRedis = true; }
        Limiter = new KeyLimiter(Redis ?? (ICounterStore)new LocalCounterStore());
        Instance = Interlocked.Increment(ref _instances).ToString(System.Globalization.CultureInfo.InvariantCulture);
        ServerMetrics.Register(this);
    }

    public ServerOptions Options { get; }
    public ILogger Log { get; }
    public Dictionary<string, ConsortModel> Models { get; }
    public IReadOnlyDictionary<string, IEmbeddingGenerator<string, Embedding<float>>> Embedders { get; }
    public ApiKeyRing Keys { get; }
    public RequestGate Gate { get; }
    public RedisState? Redis { get; }
    public KeyLimiter Limiter { get; }
    public string Instance { get; }
    public bool Stopping => Volatile.Read(ref _stopping) == 1;

    public static readonly JsonSerializerOptions TraceJson = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>Stops admitting; in-flight requests get <see cref="ServerOptions.ShutdownTimeout"/> to finish, then are cancelled.</summary>
    public void BeginShutdown()
    {
        if (Interlocked.Exchange(ref _stopping, 1) == 1) return;
        Log.LogInformation("shutting down: {InFlight} requests in flight, {Waiting} waiting; in-flight requests have {Timeout} s to finish",
            Gate.InFlight, Gate.Waiting, Options.ShutdownTimeout.TotalSeconds);
        _shutdown.CancelAfter(Options.ShutdownTimeout);
    }

    /// <summary>The bearer token of a request (null when absent).</summary>
    public static string? Bearer(HttpRequest request)
    {
        string? auth = request.Headers.Authorization;
        return auth is not null && auth.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? auth[7..].Trim() : null;
    }

    public ConsortModel Resolve(HttpContext ctx, string name)
    {
        if (!Models.TryGetValue(name, out var m))
            throw new ApiError(404, $"model '{name}' not found; available: {string.Join(", ", Allowed(ctx))}", param: "model", code: "model_not_found");
        Allow(ctx, name);
        RequestInfo.Of(ctx).Model = name;
        return m;
    }

    /// <summary>Refuses a model the request's key may not use.</summary>
    public static void Allow(HttpContext ctx, string name)
    {
        if (RequestInfo.Of(ctx).Key is { Limits.Models: { } allowed } key && !allowed.Contains(name))
            throw new ApiError(403, $"key '{key.Name}' may not use model '{name}'; it may use: {string.Join(", ", allowed.Order())}", "permission_error", "model", "model_not_allowed");
    }

    public IEnumerable<string> Allowed(HttpContext ctx) =>
        RequestInfo.Of(ctx).Key?.Limits.Models is { } allowed ? Models.Keys.Where(allowed.Contains) : Models.Keys;

    /// <summary>Records what a request used (for limits, metrics and the log line).</summary>
    public static void Record(HttpContext ctx, string model, long prompt, long completion, decimal? cost)
    {
        var info = RequestInfo.Of(ctx);
        info.Model = model;
        info.PromptTokens += prompt;
        info.CompletionTokens += completion;
        if (cost is { } c) info.Cost = (info.Cost ?? 0) + c;
    }

    /// <summary>
    /// Runs a handler: key limits, then a slot (waiting in the queue), then the handler under the request timeout and the
    /// shutdown deadline, mapping failures to OpenAI-shaped errors (an error event once a stream has started).
    /// </summary>
    public async Task RunAsync(HttpContext ctx, string endpoint, Func<HttpContext, ServerState, CancellationToken, Task> handler)
    {
        var info = RequestInfo.Of(ctx);
        info.Endpoint = endpoint;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, _shutdown.Token);
        try
        {
            if (Stopping) throw ShuttingDown();
            if (info.Key is { } key)
            {
                ServerMetrics.KeyRequest(key.Name);
                await Limiter.AdmitAsync(key, ctx.RequestAborted);
            }
            var sw = Stopwatch.StartNew();
            using var slot = await Gate.EnterAsync(cts.Token);
            info.QueueWait = sw.Elapsed;
            ServerMetrics.Waited(sw.Elapsed);
            if (Stopping && _shutdown.IsCancellationRequested) throw ShuttingDown();
            cts.CancelAfter(Options.RequestTimeout);
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
        catch (OperationCanceledException) when (_shutdown.IsCancellationRequested)
        {
            await WriteErrorAsync(ctx, new ApiError(503, $"the server shut down before the answer was complete (shutdown_timeout_s {Options.ShutdownTimeout.TotalSeconds:0.###})",
                "server_error", code: "server_shutdown") { RetryAfterSeconds = 1 });
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            await WriteErrorAsync(ctx, new ApiError(504, $"request timed out after {Options.RequestTimeout.TotalSeconds:0.###} s", "timeout", code: "timeout"));
        }
        catch (GatewayExhaustedException e)
        {
            Log.LogWarning("{RequestId} request failed: {Message}", info.Id, e.Message);
            var status = (int)GatewayErrors.StatusFor(e.Kind);
            await WriteErrorAsync(ctx, new ApiError(status, e.Message, status == 429 ? "rate_limit_error" : status == 400 ? "invalid_request_error" : status == 504 ? "timeout" : "server_error",
                code: e.Kind == FailureKind.ContextWindow ? "context_length_exceeded" : "upstream_" + e.Kind.Name()) { RetryAfterSeconds = status == 429 ? 1 : null });
        }
        catch (ConfigException e)
        {
            await WriteErrorAsync(ctx, new ApiError(400, e.Message));
        }
        catch (ConsortException e)
        {
            Log.LogWarning("{RequestId} request failed: {Message}", info.Id, e.Message);
            var kind = GatewayErrors.Classify(e);
            await WriteErrorAsync(ctx, kind == FailureKind.ContextWindow
                ? new ApiError(400, e.Message, code: "context_length_exceeded")
                : new ApiError(502, e.Message, "server_error", code: "model_error"));
        }
        catch (Exception e)
        {
            Log.LogError(e, "{RequestId} request failed", info.Id);
            await WriteErrorAsync(ctx, new ApiError(500, $"internal error: {e.GetType().Name}: {e.Message}", "server_error"));
        }
        finally
        {
            await RecordUsageAsync(info);
        }
    }

    private static ApiError ShuttingDown()
    {
        ServerMetrics.Refused("shutting_down");
        return new ApiError(503, "the server is shutting down; retry on another replica", "server_error", code: "server_shutdown") { RetryAfterSeconds = 1 };
    }

    private async Task RecordUsageAsync(RequestInfo info)
    {
        if (info.Recorded || info.Model is null) return;
        info.Recorded = true;
        ServerMetrics.Used(info.Model, info.Key?.Name, info.PromptTokens, info.CompletionTokens, info.Cost);
        if (info.Key is { } key && (info.PromptTokens + info.CompletionTokens > 0 || info.Cost > 0))
        {
            try { await Limiter.RecordAsync(key, info.PromptTokens + info.CompletionTokens, info.Cost); }
            catch (Exception e) { Log.LogWarning("{RequestId} usage of key '{Key}' not recorded: {Error}", info.Id, key.Name, e.Message); }
        }
    }

    // After an SSE stream has started, the error travels as one more event (what OpenAI's clients read).
    public static async Task WriteErrorAsync(HttpContext ctx, ApiError e)
    {
        if (!ctx.Response.HasStarted) { await e.WriteAsync(ctx.Response); return; }
        if (ctx.RequestAborted.IsCancellationRequested) return;
        try
        {
            await ctx.Response.WriteAsync("data: " + e.ToJson().ToJsonString() + "\n\n");
            await ctx.Response.Body.FlushAsync();
        }
        catch (Exception) when (ctx.RequestAborted.IsCancellationRequested) { }
        catch (InvalidOperationException) { }
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

    /// <summary>The number of choices asked for (<c>n</c>), 1..<see cref="ServerOptions.MaxChoices"/>.</summary>
    public int Choices(RequestBody body)
    {
        int n = body.Int("n") ?? 1;
        if (n < 1 || n > Options.MaxChoices) throw new ApiError(400, $"'n' must be 1..{Options.MaxChoices}, got {n}", param: "n");
        return n;
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

    public void Dispose()
    {
        ServerMetrics.Unregister(this);
        if (_ownsRedis) Redis?.Dispose();
        _shutdown.Dispose();
    }
}
