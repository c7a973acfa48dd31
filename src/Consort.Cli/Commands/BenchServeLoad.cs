using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using Consort.Server;
using Microsoft.Extensions.Logging;

namespace Consort.Cli.Commands;

/// <summary>
/// The load part of <c>consort bench serve --load CONFIG</c>: a serve config's model (default: its first collaboration)
/// served in-process on loopback, N requests from C concurrent clients (a share of them streamed), every answer checked.
/// Prints statuses (2xx, 429, other 4xx, 5xx, lost: no answer or a stream without its end), throughput, latency
/// percentiles, and the resident memory after the 1,000th and the last request (after a full GC, so growth means
/// something is retained per request).
/// </summary>
public static class BenchServeLoad
{
    /// <summary>The memory target: resident memory after the last request within this fraction of that after the 1,000th.</summary>
    public const double MemoryGrowthTarget = 0.10;

    /// <summary>Runs the load and returns its numbers.</summary>
    public static async Task<JsonObject> RunAsync(string configPath, string? modelName, int requests, int clients, int maxTokens, double streamShare,
        CancellationToken ct)
    {
        await using var loaded = await ServeConfig.LoadAsync(configPath, "http://127.0.0.1:0", null, ct);
        var model = modelName is null
            ? loaded.Models.FirstOrDefault(m => m.Method is not null) ?? loaded.Models[0]
            : loaded.Models.FirstOrDefault(m => m.Name == modelName) ?? throw new ConsortException($"--model '{modelName}' is not in {Path.GetFileName(configPath)}; it serves {string.Join(", ", loaded.Models.Select(m => m.Name))}");
        string key = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        var app = ConsortServer.Build(loaded.Options.ForLoopback(key, LogLevel.Warning), loaded.Models, loaded.Embedders, loaded.Redis);
        await app.StartAsync(ct);
        try
        {
            string url = ConsortServer.BoundUrls(app)[0];
            using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = clients }) { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(300) };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
            string Body(bool stream) => new JsonObject
            {
                ["model"] = model.Name, ["max_tokens"] = maxTokens, ["temperature"] = 0, ["stream"] = stream,
                ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Once upon a time" }),
            }.ToJsonString();
            string plain = Body(false), streamed = Body(true);

            var latencies = new ConcurrentBag<double>();
            var statuses = new ConcurrentDictionary<string, int>();
            int next = 0, done = 0, lost = 0;
            long rssAt1000 = 0;
            var firstThousand = new TaskCompletionSource();
            var sw = Stopwatch.StartNew();
            await Task.WhenAll(Enumerable.Range(0, clients).Select(async _ =>
            {
                while (Interlocked.Increment(ref next) is var i && i <= requests)
                {
                    bool stream = streamShare > 0 && i % Math.Max(1, (int)Math.Round(1 / streamShare)) == 0;
                    var t = Stopwatch.StartNew();
                    try
                    {
                        using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(stream ? streamed : plain, Encoding.UTF8, "application/json") };
                        using var resp = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, ct);
                        string text = await resp.Content.ReadAsStringAsync(ct);
                        int status = (int)resp.StatusCode;
                        // A 200 stream that does not end with [DONE] after a finish reason, or carries an error event, is lost.
                        bool complete = !stream || status != 200 || (text.TrimEnd().EndsWith("data: [DONE]", StringComparison.Ordinal) && !text.Contains("\"error\":", StringComparison.Ordinal));
                        if (!complete) Interlocked.Increment(ref lost);
                        else statuses.AddOrUpdate(status.ToString(System.Globalization.CultureInfo.InvariantCulture), 1, (_, n) => n + 1);
                    }
                    catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException && !ct.IsCancellationRequested)
                    {
                        Interlocked.Increment(ref lost);
                    }
                    latencies.Add(t.Elapsed.TotalMilliseconds);
                    if (Interlocked.Increment(ref done) == Math.Min(1000, requests))
                    {
                        rssAt1000 = SettledRss();
                        firstThousand.TrySetResult();
                    }
                }
            }));
            double seconds = sw.Elapsed.TotalSeconds;
            long rssEnd = SettledRss();
            int Count(Func<int, bool> p) => statuses.Where(kv => p(int.Parse(kv.Key, System.Globalization.CultureInfo.InvariantCulture))).Sum(kv => kv.Value);
            int fiveXX = Count(s => s >= 500), fourXX = Count(s => s is >= 400 and < 500), tooMany = Count(s => s == 429), ok = Count(s => s is >= 200 and < 300);
            double growth = rssAt1000 > 0 ? (double)(rssEnd - rssAt1000) / rssAt1000 : 0;
            return new JsonObject
            {
                ["config"] = Path.GetFileName(configPath),
                ["model"] = model.Name,
                ["requests"] = requests, ["clients"] = clients, ["max_tokens"] = maxTokens, ["stream_share"] = streamShare,
                ["max_concurrent_requests"] = loaded.Options.MaxConcurrentRequests, ["max_queue"] = loaded.Options.MaxQueue,
                ["ok"] = ok, ["status_429"] = tooMany, ["status_4xx"] = fourXX, ["status_5xx"] = fiveXX, ["lost"] = lost,
                ["seconds"] = Math.Round(seconds, 2),
                ["requests_per_second"] = Math.Round(requests / seconds, 1),
                ["p50_ms"] = Math.Round(BenchStats.Percentile(latencies, 50), 1),
                ["p95_ms"] = Math.Round(BenchStats.Percentile(latencies, 95), 1),
                ["p99_ms"] = Math.Round(BenchStats.Percentile(latencies, 99), 1),
                ["rss_after_1000_mb"] = Math.Round(rssAt1000 / 1048576.0, 1),
                ["rss_after_last_mb"] = Math.Round(rssEnd / 1048576.0, 1),
                ["rss_growth"] = Math.Round(growth, 4),
                ["meets_memory_target"] = requests < 1000 || growth <= MemoryGrowthTarget,
                ["all_answered"] = fiveXX == 0 && lost == 0 && ok + fourXX == requests,
            };
        }
        finally
        {
            await app.StopAsync(CancellationToken.None);
            await app.DisposeAsync();
        }
    }

    // Resident memory once garbage is collected: what the process keeps, not what it has not yet freed.
    private static long SettledRss()
    {
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect();
        using var p = Process.GetCurrentProcess();
        p.Refresh();
        return p.WorkingSet64;
    }

    /// <summary>Prints the numbers of <see cref="RunAsync"/>.</summary>
    public static void Print(JsonObject r)
    {
        Console.WriteLine($"load: {r["requests"]} requests from {r["clients"]} clients against '{r["model"]}' ({r["config"]}; {r["max_concurrent_requests"]} slots, queue {r["max_queue"]}), " +
                          $"{(double)r["stream_share"]! * 100:0}% streamed, max_tokens {r["max_tokens"]}");
        Console.WriteLine($"answers: {r["ok"]} ok, {r["status_429"]} x 429, {r["status_4xx"]} x 4xx in all, {r["status_5xx"]} x 5xx, {r["lost"]} lost");
        Console.WriteLine($"throughput: {r["requests_per_second"]} requests/s ({r["seconds"]} s)");
        Console.WriteLine($"latency: p50 {r["p50_ms"]} ms, p95 {r["p95_ms"]} ms, p99 {r["p99_ms"]} ms");
        if ((int)r["requests"]! >= 1000)
            Console.WriteLine($"resident memory after request 1,000: {r["rss_after_1000_mb"]} MB; after the last: {r["rss_after_last_mb"]} MB " +
                              $"({(double)r["rss_growth"]! * 100:+0.0;-0.0}%; target within {MemoryGrowthTarget * 100:0}%: {((bool)r["meets_memory_target"]! ? "met" : "NOT met")})");
        Console.WriteLine((bool)r["all_answered"]! ? "every request answered (no 5xx, none lost)" : "NOT every request answered");
    }
}
