using System.CommandLine;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Consort.LlamaCpp;
using Consort.OpenAI;
using Consort.Server;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;

namespace Consort.Cli.Commands;

/// <summary>
/// <c>consort bench serve</c>: latency of a short greedy completion of one model called in-process, through the Consort
/// server on loopback with raw HTTP, and through Consort's own OpenAI backend (p50/p95); then requests/s through the
/// server at 1, 4 and 16 concurrent clients. Every loop is bounded by the request counts given.
/// </summary>
public sealed class BenchServeCommand : IBenchCommand
{
    /// <summary>The target: serving over loopback HTTP adds at most this much to the median latency.</summary>
    public const double TargetOverheadMs = 2.0;
    /// <summary>The target: requests/s at 16 concurrent clients over 1 client (batched decoding).</summary>
    public const double TargetThroughputRatio = 3.0;

    /// <inheritdoc />
    public Command Build()
    {
        var model = new Option<string?>("--model") { Description = "GGUF to serve (default ../shared/models/stories260k/stories260K.gguf); with --load, the config's model name." };
        var tokens = new Option<int>("--tokens") { Description = "Tokens per completion (greedy).", DefaultValueFactory = _ => 8 };
        var requests = new Option<int>("--requests") { Description = "Timed requests per latency row.", DefaultValueFactory = _ => 200 };
        var load = new Option<int>("--load-requests") { Description = "Requests per concurrency level in the throughput part.", DefaultValueFactory = _ => 160 };
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var generated = new Option<bool>("--generated") { Description = "Serve a generated ~25M-parameter model (random weights, made in a temporary folder) instead of --model." };
        var loadConfig = new Option<string?>("--load") { Description = "Load test instead: a serve config whose model (--model NAME, default its first collaboration) gets --load-requests (default 5000) requests from --clients clients." };
        var clients = new Option<int>("--clients") { Description = "Concurrent clients of the load test.", DefaultValueFactory = _ => 32 };
        var streamShare = new Option<double>("--stream-share") { Description = "Share of load-test requests that stream (0..1).", DefaultValueFactory = _ => 0.25 };
        var cmd = new Command("serve", "Latency (p50/p95) in-process vs through the Consort server on loopback, and requests/s at 1, 4 and 16 clients; or, with --load CONFIG, a load test of a served model.");
        foreach (var o in new Option[] { model, tokens, requests, load, json, generated, loadConfig, clients, streamShare }) cmd.Options.Add(o);
        cmd.SetAction(async (ParseResult pr, CancellationToken ct) =>
        {
            if (pr.GetValue(loadConfig) is { } cfg)
            {
                int total = pr.GetResult(load) is { Implicit: false } ? pr.GetValue(load) : 5000;
                int c = pr.GetValue(clients), tk = pr.GetResult(tokens) is { Implicit: false } ? pr.GetValue(tokens) : 16;
                double share = pr.GetValue(streamShare);
                if (total is < 1 or > 1_000_000) throw new ConsortException($"--load-requests must be 1..1000000, got {total}");
                if (c is < 1 or > 1024) throw new ConsortException($"--clients must be 1..1024, got {c}");
                if (share is < 0 or > 1 || double.IsNaN(share)) throw new ConsortException($"--stream-share must be 0..1, got {share}");
                if (tk is < 1 or > 4096) throw new ConsortException($"--tokens must be 1..4096, got {tk}");
                var lr = await BenchServeLoad.RunAsync(cfg, pr.GetValue(model), total, c, tk, share, ct);
                if (pr.GetValue(json)) Console.WriteLine(lr.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                else BenchServeLoad.Print(lr);
                return (bool)lr["all_answered"]! ? 0 : 1;
            }
            int n = pr.GetValue(tokens), reqs = pr.GetValue(requests), loadReqs = pr.GetValue(load);
            if (n is < 1 or > 256) throw new ConsortException($"--tokens must be 1..256, got {n}");
            if (reqs is < 5 or > 100_000) throw new ConsortException($"--requests must be 5..100000, got {reqs}");
            if (loadReqs is < 16 or > 100_000) throw new ConsortException($"--load-requests must be 16..100000, got {loadReqs}");
            string path = pr.GetValue(model) ?? Path.Combine(FindRepoRoot(), "..", "shared", "models", "stories260k", "stories260K.gguf");
            var dir = pr.GetValue(generated) ? Directory.CreateTempSubdirectory("consort-bench-serve-") : null;
            JsonObject result;
            try
            {
                if (dir is not null) path = BenchModels.WriteRandom(dir.FullName, "random-25m", BenchModels.Medium, seed: 1);
                result = await RunAsync(path, n, reqs, loadReqs, ct);
            }
            finally
            {
                try { dir?.Delete(recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            }
            if (pr.GetValue(json)) Console.WriteLine(result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            else Print(result);
            return 0;
        });
        return cmd;
    }

    /// <summary>Runs the benchmark and returns its numbers.</summary>
    public static async Task<JsonObject> RunAsync(string modelPath, int tokens, int requests, int loadRequests, CancellationToken ct)
    {
        using var model = LlamaModelFactory.Load(new LlamaModelOptions { Path = modelPath, Name = "bench", MaxSequences = 16, Seed = 1 });
        string key = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
        var app = ConsortServer.Build(new ServerOptions
        {
            Urls = "http://127.0.0.1:0", ApiKeys = [key], ReadKeysFromEnvironment = false, MaxConcurrentRequests = 64,
            MaxTokens = 1024, MinimumLogLevel = LogLevel.Warning,
        }, [model]);
        await app.StartAsync(ct);
        try
        {
            string url = ConsortServer.BoundUrls(app)[0];
            using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 64 }) { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(60) };
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", key);
            string keyEnv = "CONSORT_BENCH_KEY_" + Environment.ProcessId;
            Environment.SetEnvironmentVariable(keyEnv, key);
            using var remote = OpenAIModelFactory.Create(new OpenAIModelOptions
            {
                Name = "bench-remote", BaseUrl = url + "/v1", Model = "bench", ApiKeyEnv = keyEnv, TopLogprobs = 0, MaxRetries = 0,
                Timeout = TimeSpan.FromSeconds(60),
            });
            List<ChatMessage> messages = [new(ChatRole.User, "Once upon a time")];
            var options = new ChatOptions { Temperature = 0, MaxOutputTokens = tokens };
            string body = new JsonObject
            {
                ["model"] = "bench", ["temperature"] = 0, ["max_tokens"] = tokens,
                ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Once upon a time" }),
            }.ToJsonString();

            async Task<string> InProcess() => (await model.Chat.GetResponseAsync(messages, options, ct)).Text;
            async Task<string> Http()
            {
                using var resp = await http.PostAsync("/v1/chat/completions", new StringContent(body, Encoding.UTF8, "application/json"), ct);
                string text = await resp.Content.ReadAsStringAsync(ct);
                if (!resp.IsSuccessStatusCode) throw new ConsortException($"bench: server answered {(int)resp.StatusCode}: {text}");
                return JsonNode.Parse(text)!["choices"]![0]!["message"]!["content"]!.GetValue<string>();
            }
            async Task<string> Backend() => (await remote.Chat.GetResponseAsync(messages, options, ct)).Text;

            // Same answer three ways, or the comparison means nothing.
            string a = await InProcess(), b = await Http(), c = await Backend();
            if (a != b || a != c) throw new ConsortException($"bench: answers differ: in-process '{a}', http '{b}', backend '{c}'");
            Func<Task<string>>[] subjects = [InProcess, Http, Backend];
            for (int w = 0; w < 10; w++) foreach (var s in subjects) await s();
            var times = subjects.Select(_ => new List<double>(requests)).ToArray();
            // Interleaved so that machine noise falls on all three alike.
            for (int r = 0; r < requests; r++)
                for (int i = 0; i < subjects.Length; i++)
                {
                    var sw = Stopwatch.StartNew();
                    await subjects[i]();
                    times[i].Add(sw.Elapsed.TotalMilliseconds);
                }
            JsonObject Row(string name, List<double> t) => new()
            {
                ["path"] = name, ["p50_ms"] = Math.Round(BenchStats.Percentile(t, 50), 3), ["p95_ms"] = Math.Round(BenchStats.Percentile(t, 95), 3), ["requests"] = t.Count,
            };
            // Overhead = median of paired differences (each HTTP call against the in-process call just before it), which
            // cancels slow drifts in machine load better than a difference of medians.
            double overhead = BenchStats.Percentile([.. times[1].Zip(times[0], (h, l) => h - l)], 50);
            double overheadBackend = BenchStats.Percentile([.. times[2].Zip(times[0], (h, l) => h - l)], 50);

            // Requests/s through the server, next to the same load called in-process, so a drop with more clients can be
            // told apart: the model's own scheduling (both drop) or the server (only the server drops).
            async Task<double> Load(int clients, Func<Task<string>> call)
            {
                int next = 0;
                var sw = Stopwatch.StartNew();
                await Task.WhenAll(Enumerable.Range(0, clients).Select(async _ =>
                {
                    while (Interlocked.Increment(ref next) <= loadRequests) await call();
                }));
                return sw.Elapsed.TotalSeconds;
            }
            var throughput = new JsonArray();
            foreach (int clients in new[] { 1, 4, 16 })
            {
                double secs = await Load(clients, Http);
                double local = await Load(clients, InProcess);
                throughput.Add(new JsonObject
                {
                    ["clients"] = clients, ["requests"] = loadRequests, ["seconds"] = Math.Round(secs, 3),
                    ["requests_per_second"] = Math.Round(loadRequests / secs, 1),
                    ["in_process_requests_per_second"] = Math.Round(loadRequests / local, 1),
                });
            }
            Environment.SetEnvironmentVariable(keyEnv, null);
            return new JsonObject
            {
                ["model"] = Path.GetFileName(modelPath),
                ["tokens"] = tokens,
                ["completion"] = a,
                ["latency"] = new JsonArray(Row("in-process", times[0]), Row("server (raw HTTP, loopback)", times[1]), Row("server via Consort OpenAI backend", times[2])),
                ["p50_overhead_ms"] = Math.Round(overhead, 3),
                ["p50_overhead_backend_ms"] = Math.Round(overheadBackend, 3),
                ["p50_difference_of_medians_ms"] = Math.Round(BenchStats.Percentile(times[1], 50) - BenchStats.Percentile(times[0], 50), 3),
                ["target_overhead_ms"] = TargetOverheadMs,
                ["meets_target"] = overhead <= TargetOverheadMs,
                ["throughput"] = throughput,
                // Concurrent requests are decoded in shared batches: 16 clients should get several times one client's requests/s.
                ["throughput_16_to_1"] = Math.Round((double)throughput[2]!["requests_per_second"]! / (double)throughput[0]!["requests_per_second"]!, 2),
                ["target_throughput_16_to_1"] = TargetThroughputRatio,
            };
        }
        finally
        {
            using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await app.StopAsync(stop.Token);
            await app.DisposeAsync();
        }
    }

    private static void Print(JsonObject r)
    {
        Console.WriteLine($"model {r["model"]}, {r["tokens"]} greedy tokens: \"{r["completion"]}\"");
        Console.WriteLine($"{"path",-36} {"p50 ms",9} {"p95 ms",9}");
        foreach (var row in r["latency"]!.AsArray())
            Console.WriteLine($"{row!["path"],-36} {row["p50_ms"],9} {row["p95_ms"],9}");
        Console.WriteLine($"p50 overhead of the server (median paired difference): {r["p50_overhead_ms"]} ms (target <= {r["target_overhead_ms"]} ms: {((bool)r["meets_target"]! ? "met" : "NOT met")}); via the OpenAI backend: {r["p50_overhead_backend_ms"]} ms");
        foreach (var t in r["throughput"]!.AsArray())
            Console.WriteLine($"{t!["clients"],3} clients: {t["requests_per_second"]} requests/s through the server ({t["requests"]} requests in {t["seconds"]} s); in-process {t["in_process_requests_per_second"]} requests/s");
        Console.WriteLine($"requests/s at 16 clients / 1 client = {r["throughput_16_to_1"]} (target >= {r["target_throughput_16_to_1"]}: {((double)r["throughput_16_to_1"]! >= TargetThroughputRatio ? "met" : "NOT met")})");
    }


    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Consort.slnx"))) return dir.FullName;
        return Environment.CurrentDirectory;
    }
}
