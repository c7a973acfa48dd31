using System.Net;
using Microsoft.Extensions.Http.Resilience;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Polly.Timeout;

namespace Consort.OpenAI;

/// <summary>
/// Builds the HttpClient every call to an endpoint goes through: total timeout → retry (exponential backoff
/// with jitter, Retry-After honoured, on 408/429/5xx, connection failures and attempt timeouts) → circuit
/// breaker → per-attempt timeout. The OpenAI SDK's own retries are switched off so calls are not retried twice.
/// </summary>
public static class ResilientHttp
{
    /// <summary>Creates the pipeline for <paramref name="o"/>. <paramref name="onAttempt"/> sees every retry (for logs and tests).</summary>
    public static ResiliencePipeline<HttpResponseMessage> CreatePipeline(OpenAIModelOptions o, Action<OnRetryArguments<HttpResponseMessage>>? onRetry = null)
    {
        var builder = new ResiliencePipelineBuilder<HttpResponseMessage>()
            .AddTimeout(o.EffectiveTotalTimeout);
        if (o.MaxRetries > 0)
        {
            builder.AddRetry(new HttpRetryStrategyOptions
            {
                MaxRetryAttempts = o.MaxRetries,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = o.BackoffBase,
                MaxDelay = TimeSpan.FromSeconds(30),
                ShouldRetryAfterHeader = true,
                OnRetry = args => { onRetry?.Invoke(args); return default; },
            });
        }
        builder.AddCircuitBreaker(new HttpCircuitBreakerStrategyOptions
        {
            FailureRatio = o.BreakerFailureRatio,
            MinimumThroughput = o.BreakerMinimumThroughput,
            SamplingDuration = o.BreakerSamplingDuration,
            BreakDuration = o.BreakerBreakDuration,
        });
        builder.AddTimeout(o.Timeout);
        return builder.Build();
    }

    /// <summary>An HttpClient whose handler runs <see cref="CreatePipeline"/>; HttpClient's own timeout is off (the pipeline owns time).</summary>
    public static HttpClient CreateClient(OpenAIModelOptions o, Action<OnRetryArguments<HttpResponseMessage>>? onRetry = null)
    {
        var handler = new ResilienceHandler(CreatePipeline(o, onRetry))
        {
            InnerHandler = new SocketsHttpHandler
            {
                PooledConnectionLifetime = TimeSpan.FromMinutes(5),
                ConnectTimeout = o.Timeout < TimeSpan.FromSeconds(10) ? o.Timeout : TimeSpan.FromSeconds(10),
                AutomaticDecompression = DecompressionMethods.GZip | DecompressionMethods.Deflate,
            },
        };
        return new HttpClient(handler) { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
    }

    /// <summary>
    /// Turns transport failures into a <see cref="ConsortException"/> naming the model and URL; returns null for
    /// exceptions that are not transport failures (caller rethrows). Cancellation by the caller is not translated.
    /// </summary>
    public static ConsortException? Translate(Exception e, OpenAIModelOptions o, CancellationToken callerToken)
    {
        if (callerToken.IsCancellationRequested) return null;
        string where = $"model '{o.Name}' at {o.BaseUrl}";
        return e switch
        {
            ConsortException => null,
            TimeoutRejectedException t => new ConsortException($"{where}: timed out after {t.Timeout.TotalSeconds:0.###} s", e),
            BrokenCircuitException => new ConsortException($"{where}: circuit breaker open after repeated failures; not calling the endpoint for now", e),
            HttpRequestException h when h.StatusCode is { } s => new ConsortException($"{where}: HTTP {(int)s} {s}: {h.Message}", e),
            HttpRequestException h => new ConsortException($"{where}: unreachable: {h.Message}", e),
            System.ClientModel.ClientResultException c when c.Status == 0 => new ConsortException($"{where}: unreachable: {(c.InnerException ?? c).Message}", e),
            System.ClientModel.ClientResultException c => new ConsortException($"{where}: HTTP {c.Status}: {c.Message}", e),
            TaskCanceledException or OperationCanceledException => new ConsortException($"{where}: timed out", e),
            _ when e.InnerException is { } inner => Translate(inner, o, callerToken) is { } ie ? new ConsortException(ie.Message, e) : null,
            _ => null,
        };
    }
}
