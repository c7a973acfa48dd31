using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Consort.Testing;
using Xunit.Abstractions;

namespace Consort.Cli.Tests;

/// <summary>
/// Every API-level method (single_model and likelihood_router too) from one real <c>consort serve</c> process on loopback, over the zoo's llama.cpp models:
/// the routers trained first by a short <c>consort run</c> of the same hyperparameters and served from their
/// <c>router_path</c>; each collaboration answered through <c>/v1/chat/completions</c> (one streamed), and each answer
/// traced back to the method (a routed answer is what the routed member says alone; decoded answers are the spans
/// their members wrote). Also the start-up errors: a router saved for other members, and a method that needs a dev
/// split a serve config does not have (served from a run config, the task's dev split fits it).
/// </summary>
public class ApiMethodsServeTests(ITestOutputHelper output)
{
    private static readonly string[] Experts = ["arith", "facts_a", "facts_b"];
    private static readonly string[] Questions = ["Q: 8+41= A:", "Q: Where does Suthir live? A:"];

    private static JsonArray Pool() => new(
        new JsonObject { ["name"] = "arith", ["path"] = "zoo:arith" }, new JsonObject { ["name"] = "facts_a", ["path"] = "zoo:facts_a" },
        new JsonObject { ["name"] = "facts_b", ["path"] = "zoo:facts_b" }, new JsonObject { ["name"] = "base", ["path"] = "zoo:base" });

    // The routers' settings, shared by the training run and the served collaborations (the saved router must match them).
    // Embeddings from the zoo's base GGUF (llama.cpp): no optional MiniLM build needed.
    private static JsonObject KnnRouter() => JsonNode.Parse("""{ "router": "knn", "embedding": "zoo:base", "router_path": "routers/knn.json", "dev_size": 60 }""")!.AsObject();
    private static JsonObject GraphRouter() => JsonNode.Parse("""
        { "embedding": "zoo:base", "router_path": "routers/graph.json", "dev_size": 60,
          "model_descriptions": ["Adds numbers.", "Knows where the first half of the people live.", "Knows where the second half of the people live."] }
        """)!.AsObject();

    private static JsonObject Collab(string method, string[] members, JsonObject hp) =>
        new() { ["method"] = method, ["models"] = new JsonArray([.. members.Select(m => (JsonNode)m)]), ["hyperparameters"] = hp };

    /// <summary>Trains the two routers with a short run on zoo:mixed (the dev split is what they learn from).</summary>
    private static async Task TrainRoutersAsync(TempDir dir)
    {
        var run = new JsonObject
        {
            ["task"] = JsonNode.Parse("""{ "dataset": "zoo:mixed", "prompt": "{input}", "max_tokens": 8, "stop": ["\n"] }"""),
            ["models"] = new JsonArray([.. Pool().Take(3).Select(n => n!.DeepClone())]),
            ["runs"] = new JsonArray(
                new JsonObject { ["name"] = "trained_router", ["method"] = "trained_router", ["hyperparameters"] = KnnRouter() },
                new JsonObject { ["name"] = "graph_routing", ["method"] = "graph_routing", ["hyperparameters"] = GraphRouter() }),
        };
        File.WriteAllText(dir.File("run.json"), run.ToJsonString());
        var (code, stdout, stderr) = await CliHarness.RunWithAsync(null, null, TimeSpan.FromMinutes(4), "run", dir.File("run.json"), "--out", dir.File("out"), "--limit", "3");
        Assert.True(code == 0, stderr + stdout);
        Assert.True(File.Exists(dir.File("routers/knn.json")) && File.Exists(dir.File("routers/graph.json")), stderr + stdout);
    }

    [Fact]
    public async Task Every_api_method_answers_from_consort_serve_through_the_method()
    {
        var sw = Stopwatch.StartNew();
        using var dir = new TempDir();
        await TrainRoutersAsync(dir);
        var trained = sw.Elapsed;
        string[] pair = ["base", "facts_a"];
        var collaborations = new JsonObject
        {
            // Zoo models have a 128-token context: a short routing prompt (the documented override) keeps it inside.
            ["prompt_routing"] = Collab("prompt_routing", Experts, JsonNode.Parse("""
                { "router_model": "arith", "model_descriptions": ["sums", "facts A", "facts B"], "prompts": { "route": "{candidates}{question}" } }
                """)!.AsObject()),
            ["trained_router"] = Collab("trained_router", Experts, KnnRouter()),
            ["graph_routing"] = Collab("graph_routing", Experts, GraphRouter()),
            ["cascade"] = Collab("cascade", ["arith", "facts_b"], JsonNode.Parse("""{ "thresholds": [0.95] }""")!.AsObject()),
            ["likelihood_router"] = Collab("likelihood_router", Experts, new JsonObject()),
            ["single_model"] = Collab("single_model", ["facts_a"], new JsonObject()),
            ["nudging"] = Collab("nudging", pair, JsonNode.Parse("""{ "gamma": 0.4 }""")!.AsObject()),
            ["co_llm"] = Collab("co_llm", pair, JsonNode.Parse("""{ "deferral": "top1", "deferral_threshold": 0.5 }""")!.AsObject()),
            ["switch_generation"] = Collab("switch_generation", pair, JsonNode.Parse("""{ "patch_size": 2, "random_selection": true }""")!.AsObject()),
            ["mentor_collab"] = Collab("mentor_collab", pair, JsonNode.Parse("""{ "decision_proportion": 100, "patch_size": 2, "mode": "free" }""")!.AsObject()),
        };
        var serve = dir.File("serve.json");
        File.WriteAllText(serve, new JsonObject { ["models"] = Pool(), ["collaborations"] = collaborations }.ToJsonString());
        int port = TestNet.FreePort();
        var server = await CliHarness.StartServerAsync(serve, port);
        var started = sw.Elapsed;
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(90) };
            async Task<JsonObject> Ask(string model, string question, bool trace = true)
            {
                var body = new JsonObject
                {
                    ["model"] = model, ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = question }),
                    ["max_tokens"] = 8, ["stop"] = new JsonArray("\n"), ["consort_trace"] = trace,
                };
                var r = await http.PostAsJsonAsync("/v1/chat/completions", body);
                var text = await r.Content.ReadAsStringAsync();
                Assert.True(r.IsSuccessStatusCode, $"{model}: {(int)r.StatusCode} {text}");
                return JsonNode.Parse(text)!.AsObject();
            }
            static string Content(JsonObject j) => (string)j["choices"]![0]!["message"]!["content"]!;
            var alone = new Dictionary<(string, string), string>();
            async Task<string> Alone(string model, string q) =>
                alone.TryGetValue((model, q), out var a) ? a : alone[(model, q)] = Content(await Ask(model, q, trace: false));

            var routedTo = new Dictionary<string, HashSet<string>>();
            foreach (var (name, node) in collaborations)
            {
                var members = node!["models"]!.AsArray().Select(m => (string)m!).ToHashSet();
                foreach (var q in Questions)
                {
                    var j = await Ask(name, q);
                    string text = Content(j);
                    var trace = j["consort_trace"]!.AsArray().Select(t => t!.AsObject()).ToList();
                    output.WriteLine($"{name} | {q} -> '{text}' usage {j["usage"]!.ToJsonString()}; trace {string.Join("; ", trace.Select(t => $"{t["model"]} {t["role"]} '{t["output"]}'"))}");
                    Assert.False(string.IsNullOrWhiteSpace(text), $"{name}: empty answer");
                    var usage = j["usage"]!;
                    Assert.True((long)usage["completion_tokens"]! > 0 && (long)usage["prompt_tokens"]! > 0, $"{name}: usage {usage.ToJsonString()}");
                    Assert.Equal((long)usage["prompt_tokens"]! + (long)usage["completion_tokens"]!, (long)usage["total_tokens"]!);
                    Assert.NotEmpty(trace);
                    Assert.All(trace, t => Assert.Contains((string)t["model"]!, members)); // every inner call went to a member
                    switch (name)
                    {
                        case "prompt_routing" or "trained_router" or "graph_routing" or "cascade" or "likelihood_router" or "single_model":
                        {
                            // The routed member answers; its answer is what it gives alone.
                            var answer = trace[^1];
                            string by = (string)answer["model"]!;
                            (routedTo.TryGetValue(name, out var set) ? set : routedTo[name] = []).Add(by);
                            Assert.Equal(await Alone(by, q), text);
                            if (name == "prompt_routing")
                            {
                                Assert.Equal("route", (string)trace[0]["role"]!);
                                Assert.Equal("arith", (string)trace[0]["model"]!);
                                var data = trace[0]["data"]!;
                                Assert.Equal((bool)data["fallback"]!, data["chosen"] is null);
                                Assert.Equal((string?)data["chosen"] ?? "arith", by); // no named choice: the fallback (router_model without dev)
                            }
                            else if (name == "cascade")
                            {
                                // Each stage defers exactly when its confidence is under its threshold.
                                foreach (var stage in trace.Where(t => t["data"]?["confidence"] is not null))
                                    Assert.Equal((double)stage["data"]!["confidence"]! < (double)stage["data"]!["threshold"]!, (bool)stage["data"]!["deferred"]!);
                                Assert.Equal(trace.Count > 1, (bool)trace[0]["data"]!["deferred"]!);
                            }
                            else if (name == "likelihood_router")
                            {
                                // Every expert scores the query's likelihood; the most likely one answers.
                                var scored = trace.Where(t => (string?)t["role"] == "score query").ToDictionary(t => (string)t["model"]!, t => (double)t["data"]!["score"]!);
                                Assert.Equal(Experts.Order(), scored.Keys.Order());
                                Assert.Equal(scored.MaxBy(kv => kv.Value).Key, by);
                            }
                            else if (name == "single_model") Assert.Equal("facts_a", by);
                            else
                            {
                                // The saved router's scores pick the member (no threshold: the best predicted one).
                                var data = answer["data"]!;
                                Assert.Equal(name == "trained_router" ? "knn" : "graph", (string)data["router"]!);
                                var scores = data["scores"]!.AsObject().ToDictionary(kv => kv.Key, kv => (double)kv.Value!);
                                Assert.Equal(scores.MaxBy(kv => kv.Value).Key, by);
                            }
                            break;
                        }
                        default:
                        {
                            // Decoding methods: the answer is the spans their members wrote, in order.
                            var data = trace[0]["data"]!;
                            var spans = data["spans"]!.AsArray().Select(s => ((string)s!["model"]!, (string)s["text"]!)).ToList();
                            Assert.Equal(text.Trim(), string.Concat(spans.Select(s => s.Item2)).Trim());
                            Assert.All(spans, s => Assert.Contains(s.Item1, members));
                            foreach (var s in spans) (routedTo.TryGetValue(name, out var set) ? set : routedTo[name] = []).Add(s.Item1);
                            if (name is "nudging" or "co_llm") Assert.InRange((double)data["deferral_rate"]!, 0, 1);
                            if (name == "mentor_collab") Assert.NotNull(data["decisions"]);
                            break;
                        }
                    }
                }
            }
            output.WriteLine("writers / routed members: " + string.Join("; ", routedTo.Select(kv => $"{kv.Key}: {string.Join(", ", kv.Value)}")));
            // The knn router sends the sum and the facts question to different experts; the token-level methods put the
            // second member's text into some answer (the nudger, the mentor's deferred tokens, the other writer's patches).
            Assert.True(routedTo["trained_router"].Count >= 2, string.Join(", ", routedTo["trained_router"]));
            foreach (var m in new[] { "nudging", "co_llm", "switch_generation" }) Assert.Contains("facts_a", routedTo[m]);

            // One streamed request: the deltas add up to the unstreamed answer, and usage comes in the last chunk.
            var streamBody = new JsonObject
            {
                ["model"] = "trained_router", ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = Questions[1] }),
                ["max_tokens"] = 8, ["stop"] = new JsonArray("\n"), ["stream"] = true, ["stream_options"] = new JsonObject { ["include_usage"] = true },
            };
            using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = JsonContent.Create(streamBody) };
            using var resp = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
            Assert.True(resp.IsSuccessStatusCode);
            Assert.Equal("text/event-stream", resp.Content.Headers.ContentType?.MediaType);
            var events = (await resp.Content.ReadAsStringAsync()).Split('\n').Where(l => l.StartsWith("data: ")).Select(l => l[6..]).ToList();
            Assert.Equal("[DONE]", events[^1]);
            var chunks = events.SkipLast(1).Select(e => JsonNode.Parse(e)!.AsObject()).ToList();
            string streamed = string.Concat(chunks.Select(c => c["choices"]!.AsArray().FirstOrDefault()?["delta"]?["content"]?.GetValue<string>() ?? ""));
            Assert.True(chunks.Count(c => (c["choices"]!.AsArray().FirstOrDefault()?["delta"]?["content"]?.GetValue<string>() ?? "") != "") >= 1);
            Assert.Equal(Content(await Ask("trained_router", Questions[1], trace: false)), streamed);
            var streamUsage = chunks.Last(c => c["usage"] is not null)["usage"]!;
            Assert.True((long)streamUsage["completion_tokens"]! > 0, streamUsage.ToJsonString());
            output.WriteLine($"streamed trained_router: '{streamed}' in {chunks.Count} chunks, usage {streamUsage.ToJsonString()}");
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
        }
        output.WriteLine($"routers trained in {trained.TotalSeconds:F1} s, server up after {started.TotalSeconds:F1} s, all done in {sw.Elapsed.TotalSeconds:F1} s");
    }

    [Fact]
    public async Task Serve_refuses_at_start_a_router_saved_for_other_members_and_a_method_it_cannot_fit()
    {
        using var dir = new TempDir();
        await TrainRoutersAsync(dir);
        // The knn router was trained for [arith, facts_a, facts_b]; this collaboration has them in another order.
        var wrong = dir.File("wrong.json");
        File.WriteAllText(wrong, new JsonObject
        {
            ["models"] = Pool(),
            ["collaborations"] = new JsonObject { ["router"] = Collab("trained_router", ["facts_b", "facts_a", "arith"], KnnRouter()) },
        }.ToJsonString());
        var sw = Stopwatch.StartNew();
        var (code, stdout, stderr) = await CliHarness.RunWithAsync(null, null, TimeSpan.FromMinutes(2), "serve", wrong, "--urls", $"http://127.0.0.1:{TestNet.FreePort()}");
        output.WriteLine($"wrong router ({sw.Elapsed.TotalSeconds:F1} s): {stderr.Trim()}");
        Assert.Equal(1, code);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Assert.StartsWith("error: collaboration 'router' (method trained_router): hyperparameter 'router_path' 'routers/knn.json' was saved for another set-up:", line);
        Assert.Contains("trained for models [arith, facts_a, facts_b], the members here are [facts_b, facts_a, arith]", line);
        Assert.DoesNotContain("building", stdout + stderr); // refused before any model loaded
        Assert.DoesNotContain("serving", stdout);

        // The right members, another kind: the file's settings say what it was trained with.
        var mlp = KnnRouter();
        mlp["router"] = "mlp";
        File.WriteAllText(wrong, new JsonObject { ["models"] = Pool(), ["collaborations"] = new JsonObject { ["router"] = Collab("trained_router", Experts, mlp) } }.ToJsonString());
        (code, stdout, stderr) = await CliHarness.RunWithAsync(null, null, TimeSpan.FromMinutes(2), "serve", wrong, "--urls", $"http://127.0.0.1:{TestNet.FreePort()}");
        output.WriteLine($"other kind: {stderr.Trim()}");
        Assert.Equal(1, code);
        line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Assert.Contains("'router_path' 'routers/knn.json' was saved for another set-up: it was trained with router=knn; cost_weight=0, here router=mlp; cost_weight=0", line);
        Assert.DoesNotContain("building", stdout + stderr);

        // co_llm's default deferral signal is a classifier fitted on dev tokens; a serve config has no dev split.
        var unfit = dir.File("unfit.json");
        File.WriteAllText(unfit, new JsonObject
        {
            ["models"] = Pool(),
            ["collaborations"] = new JsonObject { ["defer"] = Collab("co_llm", ["base", "facts_a"], new JsonObject()) },
        }.ToJsonString());
        (code, stdout, stderr) = await CliHarness.RunWithAsync(null, null, TimeSpan.FromMinutes(2), "serve", unfit, "--urls", $"http://127.0.0.1:{TestNet.FreePort()}");
        output.WriteLine($"co_llm without dev: {stderr.Trim()}");
        Assert.Equal(1, code);
        line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Assert.StartsWith("error: collaboration 'defer' (method co_llm): hyperparameter 'deferral' = classifier needs", line);
        Assert.Contains("\"deferral\": \"top1\"", line); // says what to give instead
        Assert.DoesNotContain("serving", stdout);

        // What the message asks for: the same collaboration in a run config with a task is fitted on its dev split at start.
        var withTask = dir.File("with_task.json");
        File.WriteAllText(withTask, """
            { "task": { "dataset": "zoo:facts_a", "prompt": "{input}", "max_tokens": 8, "stop": ["\n"] },
              "models": [ { "name": "base", "path": "zoo:base" }, { "name": "facts_a", "path": "zoo:facts_a" } ],
              "runs": [ { "name": "defer", "method": "co_llm", "hyperparameters": { "training_num": 16 } } ] }
            """);
        int port = TestNet.FreePort();
        var server = await CliHarness.StartServerAsync(withTask, port);
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(90) };
            var r = await http.PostAsJsonAsync("/v1/chat/completions", new JsonObject
            {
                ["model"] = "defer", ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = Questions[1] }),
                ["max_tokens"] = 8, ["stop"] = new JsonArray("\n"), ["consort_trace"] = true,
            });
            var text = await r.Content.ReadAsStringAsync();
            Assert.True(r.IsSuccessStatusCode, text);
            var data = JsonNode.Parse(text)!["consort_trace"]![0]!["data"]!;
            output.WriteLine($"co_llm served from a run config: {text}");
            Assert.Equal("classifier", (string)data["deferral"]!); // the dev-fitted signal, not a training-free one
            Assert.InRange((double)data["deferral_rate"]!, 0, 1);
        }
        finally
        {
            server.Kill(entireProcessTree: true);
            await server.WaitForExitAsync();
        }
    }
}
