using System.Diagnostics;
using System.Text.Json.Nodes;
using Consort.Gateway;
using Consort.Server.State;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OpenTelemetry.Metrics;

namespace Consort.Server;

/// <summary>
/// An OpenAI-compatible HTTP server over Consort models and collaborations: <c>GET /v1/models</c>,
/// <c>POST /v1/chat/completions</c> (JSON or SSE), <c>POST /v1/completions</c> (logprobs where the model has token
/// access), <c>POST /v1/embeddings</c>, <c>GET /health</c>, <c>GET /metrics</c> (Prometheus) and <c>GET /admin/keys</c>.
/// Models are built by the caller and stay loaded for the server's lifetime.
/// </summary>
public static class ConsortServer
{
    /// <summary>Response header carrying the request id (the client's own <c>X-Request-Id</c> when it sent a valid one).</summary>
    public const string RequestIdHeader = "X-Request-Id";

    /// <summary>
    /// Builds (does not start) the server. Call <c>StartAsync</c>/<c>RunAsync</c> on the result; with port 0 in
    /// <see cref="ServerOptions.Urls"/> read the bound address from <see cref="BoundUrls"/> after starting.
    /// <paramref name="embedders"/> answer <c>/v1/embeddings</c> under their model names. <paramref name="redis"/>: shared
    /// state connected earlier (the caller owns it; the server connects its own from <see cref="ServerOptions.Redis"/> when null).
    /// </summary>
    public static WebApplication Build(ServerOptions options, IReadOnlyList<ConsortModel> models,
        IReadOnlyDictionary<string, IEmbeddingGenerator<string, Embedding<float>>>? embedders = null, RedisState? redis = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(models);
        options.Validate();
        embedders ??= new Dictionary<string, IEmbeddingGenerator<string, Embedding<float>>>();
        if (models.Count == 0 && embedders.Count == 0) throw new ConfigException("server: no models to serve");
        var dup = models.GroupBy(m => m.Name).FirstOrDefault(g => g.Count() > 1);
        if (dup is not null) throw new ConfigException($"server: two models are named '{dup.Key}'");

        EnsureThreads(options.MaxConcurrentRequests);
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.WebHost.UseUrls(options.Urls);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            // Our own reader answers oversized bodies with an OpenAI-shaped 400 and drains them, so the client reads the
            // answer; Kestrel's limit is the backstop for bodies too large to drain (it closes the connection).
            k.Limits.MaxRequestBodySize = RequestBody.DrainLimit(options.MaxBodyBytes);
        });
        // Kestrel drains in-flight requests on stop; our own deadline cancels what is left a little earlier.
        builder.Services.Configure<HostOptions>(h => h.ShutdownTimeout = options.ShutdownTimeout + TimeSpan.FromSeconds(5));
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; });
        if (options.ExtraLogger is { } extra) builder.Logging.AddProvider(extra);
        builder.Logging.SetMinimumLevel(options.MinimumLogLevel);
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Warning);
        // A failed bind is reported once, as one line, by the caller; Kestrel and the host would log it with a stack trace.
        builder.Logging.AddFilter("Microsoft.AspNetCore.Server.Kestrel", LogLevel.None);
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting", LogLevel.None);
        if (options.Metrics)
            builder.Services.AddOpenTelemetry().WithMetrics(m => m
                .AddMeter(ServerMetrics.MeterName, GatewayMetrics.MeterName, ServerMetrics.CoreMeterName)
                .AddPrometheusExporter(p => p.ScrapeResponseCacheDurationMilliseconds = 0)); // every scrape is current

        var app = builder.Build();
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Consort.Server");
        var state = new ServerState(options, models, embedders, log, redis);
        var lifetime = app.Services.GetRequiredService<IHostApplicationLifetime>();
        lifetime.ApplicationStopping.Register(state.BeginShutdown);
        lifetime.ApplicationStopped.Register(state.Dispose);
        if (state.Keys.Count == 0)
            log.LogWarning("no API keys configured (CONSORT_API_KEYS or a keys file): the server accepts every request");
        if (state.Redis is not null) log.LogInformation("shared state in redis (counters and cache)");

        app.Use(async (ctx, next) =>
        {
            var sw = Stopwatch.StartNew();
            var info = new RequestInfo { Id = RequestId(ctx.Request) };
            ctx.Items[typeof(RequestInfo)] = info;
            ctx.Response.Headers[RequestIdHeader] = info.Id;
            try
            {
                await next(ctx);
            }
            catch (BadHttpRequestException e)
            {
                await ServerState.WriteErrorAsync(ctx, new ApiError(e.StatusCode, $"bad request: {e.Message}", code: "bad_request"));
            }
            catch (Exception e) when (!ctx.RequestAborted.IsCancellationRequested)
            {
                log.LogError(e, "{RequestId} unhandled", info.Id);
                await ServerState.WriteErrorAsync(ctx, new ApiError(500, $"internal error: {e.GetType().Name}", "server_error"));
            }
            catch (OperationCanceledException) { }
            int status = ctx.RequestAborted.IsCancellationRequested ? 499 : ctx.Response.StatusCode;
            if (info.Endpoint.Length > 0) ServerMetrics.Answered(info.Model, info.Endpoint, status, sw.Elapsed);
            // One structured line per request; the key appears by its name only.
            if (ctx.Request.Path != "/metrics" && ctx.Request.Path != "/health")
                log.LogInformation("{RequestId} {Method} {Path} {Status} model={Model} key={Key} {DurationMs:0.0} ms queue={QueueMs:0.0} ms tokens={PromptTokens}+{CompletionTokens}",
                    info.Id, ctx.Request.Method, ctx.Request.Path.Value, status, info.Model ?? "-", info.Key?.Name ?? "-", sw.Elapsed.TotalMilliseconds,
                    info.QueueWait.TotalMilliseconds, info.PromptTokens, info.CompletionTokens);
        });
        // Every status without a body (404 of an unknown path, 405 of a wrong method) gets the OpenAI error shape.
        app.UseStatusCodePages(async sc =>
        {
            var ctx = sc.HttpContext;
            var e = ctx.Response.StatusCode switch
            {
                404 => new ApiError(404, $"no such endpoint: {ctx.Request.Method} {ctx.Request.Path}; see GET /v1/models, POST /v1/chat/completions, /v1/completions, /v1/embeddings", code: "not_found"),
                405 => new ApiError(405, $"method {ctx.Request.Method} is not allowed on {ctx.Request.Path}", code: "method_not_allowed"),
                var s => new ApiError(s, $"HTTP {s}", s >= 500 ? "server_error" : "invalid_request_error"),
            };
            ctx.Response.ContentType = "application/json";
            await ctx.Response.WriteAsync(e.ToJson().ToJsonString());
        });
        app.Use(async (ctx, next) =>
        {
            bool guarded = ctx.Request.Path.StartsWithSegments("/v1") || ctx.Request.Path.StartsWithSegments("/admin");
            if (guarded && state.Keys.Count > 0)
            {
                var key = state.Keys.Find(ServerState.Bearer(ctx.Request));
                if (key is null)
                {
                    await new ApiError(401, "invalid or missing API key (send 'Authorization: Bearer KEY')", "invalid_request_error", code: "invalid_api_key").WriteAsync(ctx.Response);
                    return;
                }
                RequestInfo.Of(ctx).Key = key;
            }
            if (ctx.Request.Path.StartsWithSegments("/admin") && RequestInfo.Of(ctx).Key is not { Admin: true })
            {
                await new ApiError(403, "the admin endpoints need a key with \"admin\": true in the keys file", "permission_error", code: "admin_only").WriteAsync(ctx.Response);
                return;
            }
            await next(ctx);
        });

        app.MapGet("/health", (HttpContext ctx) => WriteJson(ctx, new JsonObject
        {
            ["status"] = state.Stopping ? "stopping" : "ok", ["models"] = models.Count, ["in_flight"] = state.Gate.InFlight, ["queued"] = state.Gate.Waiting,
            ["state"] = state.Redis is null ? "local" : state.Redis.Up ? "redis" : "local (redis unavailable)",
        }));
        app.MapGet("/v1/models", (HttpContext ctx) => WriteJson(ctx, new JsonObject
        {
            ["object"] = "list",
            ["data"] = new JsonArray([.. state.Allowed(ctx).Select(n => (JsonNode)ModelJson(state.Models[n])), .. EmbedderJson(ctx, state)]),
        }));
        app.MapGet("/v1/models/{id}", (HttpContext ctx, string id) =>
        {
            if (!state.Models.TryGetValue(id, out var m))
                return new ApiError(404, $"model '{id}' not found", param: "model", code: "model_not_found").WriteAsync(ctx.Response);
            try { ServerState.Allow(ctx, id); }
            catch (ApiError e) { return e.WriteAsync(ctx.Response); }
            return WriteJson(ctx, ModelJson(m));
        });
        app.MapPost("/v1/chat/completions", ctx => state.RunAsync(ctx, "chat", ChatEndpoint.HandleAsync));
        app.MapPost("/v1/completions", ctx => state.RunAsync(ctx, "completions", CompletionsEndpoint.HandleAsync));
        app.MapPost("/v1/embeddings", ctx => state.RunAsync(ctx, "embeddings", EmbeddingsEndpoint.HandleAsync));
        app.MapGet("/admin/keys", async (HttpContext ctx) =>
        {
            var list = new JsonArray();
            foreach (var k in state.Keys.Keys) list.Add(await state.Limiter.UsageAsync(k, ctx.RequestAborted));
            await WriteJson(ctx, new JsonObject { ["object"] = "list", ["state"] = state.Limiter.Store.Where, ["data"] = list });
        });
        if (options.Metrics) app.MapPrometheusScrapingEndpoint("/metrics");
        return app;
    }

    // A client's own id is echoed when it is short and plain; otherwise the server makes one.
    private static string RequestId(HttpRequest request)
    {
        string? given = request.Headers[RequestIdHeader];
        if (given is { Length: > 0 and <= 128 } && given.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':'))
            return given;
        return "req-" + Guid.NewGuid().ToString("N")[..20];
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

    private static IEnumerable<JsonNode> EmbedderJson(HttpContext ctx, ServerState state)
    {
        foreach (var name in state.Embedders.Keys.Where(n => !state.Models.ContainsKey(n)))
        {
            if (RequestInfo.Of(ctx).Key?.Limits.Models is { } allowed && !allowed.Contains(name)) continue;
            yield return new JsonObject { ["id"] = name, ["object"] = "model", ["created"] = 0, ["owned_by"] = "consort", ["consort"] = new JsonObject { ["embeddings"] = true } };
        }
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
            ["deployments"] = m.Chat.GetService(typeof(DeploymentChatClient)) is DeploymentChatClient d
                ? new JsonArray([.. d.Pool.Deployments.Select((x, i) => (JsonNode)new JsonObject { ["name"] = x.Name, ["cooling"] = d.Pool.IsCooling(i), ["in_flight"] = d.Pool.InFlight(i) })])
                : null,
        },
    };
}
