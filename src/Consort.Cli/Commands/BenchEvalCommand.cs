using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Consort.Config;
using Consort.Evaluation;
using Consort.Formats.Gguf;
using Consort.LlamaCpp;
using Spectre.Console;

namespace Consort.Cli.Commands;

/// <summary>
/// <c>consort bench eval</c>: evaluation throughput on a generated ~25M-parameter model: <c>single_model</c> through the
/// evaluator at concurrency 1, 4 and 8 (sequences batched by the llama.cpp engine), beside plain batched llama_decode of
/// the same prompts 8 at a time in the same process; and <c>majority_vote</c> with 8 samples per item, the samples run
/// at once vs one after the other. Repeats are interleaved; medians are reported.
/// </summary>
public sealed class BenchEvalCommand : IBenchCommand
{
    /// <summary>Target: tokens/s at concurrency 8 over concurrency 1.</summary>
    public const double TargetSpeedup = 3.0;
    /// <summary>Target: tokens/s at concurrency 8 over plain batched llama_decode of 8 sequences.</summary>
    public const double TargetOfRaw = 0.85;
    /// <summary>Target: time per item of majority_vote (8 samples at once) over 8 samples one after the other.</summary>
    public const double TargetVoteRatio = 0.4;

    private static readonly int[] Levels = [1, 4, 8];

    /// <inheritdoc />
    public Command Build()
    {
        var items = new Option<int>("--items") { Description = "Items of zoo:arith evaluated per run.", DefaultValueFactory = _ => 32 };
        var tokens = new Option<int>("--tokens") { Description = "Tokens generated per item (greedy; the random model rarely stops early).", DefaultValueFactory = _ => 48 };
        var repeats = new Option<int>("--repeats") { Description = "Timed runs of each row (the median is reported).", DefaultValueFactory = _ => 3 };
        var voteItems = new Option<int>("--vote-items") { Description = "Items of the majority_vote rows (0: skip them).", DefaultValueFactory = _ => 4 };
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var threads = new Option<int?>("--threads") { Description = "Fixed decode threads for the evaluated model (default: the engine chooses between all cores and one as it goes)." };
        var type = new Option<string>("--type") { Description = "Weight type of the generated model: f16 or f32 (f32 is twice the bytes per token: one sequence's decode is bound by memory, not arithmetic).", DefaultValueFactory = _ => "f16" };
        var cmd = new Command("eval", "single_model tokens/s at concurrency 1, 4, 8 on a generated ~25M model vs raw batched llama_decode; majority_vote samples at once vs one by one.");
        foreach (var o in new Option[] { items, tokens, repeats, voteItems, json, type, threads }) cmd.Options.Add(o);
        cmd.SetAction(async (ParseResult pr, CancellationToken ct) =>
        {
            int n = pr.GetValue(items), t = pr.GetValue(tokens), reps = pr.GetValue(repeats), votes = pr.GetValue(voteItems);
            if (n is < 8 or > 10_000) throw new ConsortException($"--items must be 8..10000, got {n}");
            if (t is < 2 or > 512) throw new ConsortException($"--tokens must be 2..512, got {t}");
            if (reps is < 1 or > 100) throw new ConsortException($"--repeats must be 1..100, got {reps}");
            if (votes is < 0 or > 1000) throw new ConsortException($"--vote-items must be 0..1000, got {votes}");
            var weightType = pr.GetValue(type)?.ToLowerInvariant() switch
            {
                "f16" or "float16" => GgmlType.F16,
                "f32" or "float32" => GgmlType.F32,
                var other => throw new ConsortException($"--type must be f16 or f32, got '{other}'"),
            };
            int? th = pr.GetValue(threads);
            if (th is < 1 or > 256) throw new ConsortException($"--threads must be 1..256, got {th}");
            var result = await RunAsync(n, t, reps, votes, ct, weightType, th);
            if (pr.GetValue(json)) Console.WriteLine(result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            else Print(result);
            return 0;
        });
        return cmd;
    }

    /// <summary>Runs the benchmark and returns its numbers.</summary>
    public static async Task<JsonObject> RunAsync(int items, int tokens, int repeats, int voteItems, CancellationToken ct, GgmlType type = GgmlType.F16, int? threads = null)
    {
        var dir = Directory.CreateTempSubdirectory("consort-bench-eval-");
        try
        {
            var genWatch = Stopwatch.StartNew();
            string modelPath = BenchModels.WriteRandom(dir.FullName, "random-25m", BenchModels.Medium, seed: 1, type);
            double genSeconds = genWatch.Elapsed.TotalSeconds;
            // Built as text, as a config file is read.
            RunConfig Config(string method, string hyper, int limit) => RunConfig.Parse(JsonNode.Parse($$"""
                {
                  "name": "bench-eval", "method": "{{method}}", "seed": 1,
                  "task": { "dataset": "arith", "max_tokens": {{tokens}}, "limit": {{limit}} },
                  "models": [ { "name": "random-25m", "path": {{JsonValue.Create(modelPath).ToJsonString()}}, "max_sequences": 8, "context_size": 256{{(threads is { } fixedThreads ? $", \"threads\": {fixedThreads}" : "")}} } ],
                  "hyperparameters": {{hyper}}
                }
                """)!.AsObject(), dir.FullName);
            var single = Config("single_model", "{}", items);
            var task = EvalTask.Create(DatasetSearch.Normalize(single.Task), DatasetSearch.Folders(dir.FullName));
            using var session = new ModelSession { BaseDirectory = dir.FullName, Seed = 1, MaxConcurrency = 8 };
            var model = await session.BuildAsync(single.Runs[0].Model, ct);
            var engine = (LlamaTokenModel)model.Tokens!;

            // The same prompts, as the chat client encodes them, for the raw rows.
            var encoder = new LlamaPromptEncoder(engine);
            var prompts = task.GetItems("test", items).Select(i => encoder.EncodePrompt(task.BuildMessages(i))).ToList();
            // Raw decoding gets the better of one thread and all (on a busy machine one is often much faster).
            var rawThreads = new[] { 1, Environment.ProcessorCount }.Distinct().ToArray();
            (double Seconds, long Tokens) Raw(IReadOnlyList<int[]> batch, int perCall)
            {
                (double Seconds, long Tokens) best = (double.MaxValue, 0);
                foreach (int th in rawThreads)
                {
                    double secs = 0; long gen = 0;
                    for (int i = 0; i < batch.Count; i += perCall)
                    {
                        var res = LlamaRawDecode.Run(new LlamaModelOptions { Path = modelPath, Threads = th }, batch.Skip(i).Take(perCall).ToList(), tokens);
                        secs += res.Seconds; gen += res.GeneratedTokens;
                    }
                    if (gen / secs > best.Tokens / best.Seconds) best = (secs, gen);
                }
                return best;
            }

            // majority_vote, samples at once (8 in flight) and one after the other (1 in flight), one item at a time.
            var vote = Config("majority_vote", """{ "samples": 8, "temperature": 0.7 }""", voteItems);
            using var voteSession = new ModelSession { BaseDirectory = dir.FullName, Seed = 1, MaxConcurrency = 8 };
            using var seqSession = new ModelSession { BaseDirectory = dir.FullName, Seed = 1, MaxConcurrency = 1 };
            ConsortModel? votePar = voteItems > 0 ? await voteSession.BuildAsync(vote.Runs[0].Model, ct) : null;
            ConsortModel? voteSeq = voteItems > 0 ? await seqSession.BuildAsync(vote.Runs[0].Model, ct) : null;

            var evalRows = Levels.ToDictionary(c => c, _ => new List<(double Seconds, long Tokens)>());
            var engineRows = Levels.ToDictionary(c => c, _ => new List<(double Decode, double Wall, long Calls, long OneThread)>());
            var rawRows = new List<(double Seconds, long Tokens)>();
            var rawSingle = new List<(double Seconds, long Tokens)>();
            var voteRows = new[] { new List<double>(), new List<double>() };
            int run = 0;
            async Task<EvalSummary> Eval(ConsortModel m, int concurrency, int limit) =>
                await EvalRunner.RunAsync(m, task, new EvalRunOptions
                {
                    OutputDirectory = Path.Combine(dir.FullName, "runs", $"{run++}"), Split = "test", Limit = limit, Concurrency = concurrency,
                    Method = m.Method ?? "single_model", OnError = ItemErrorMode.Abort,
                }, null, ct);
            // Warm-up (page cache, thread pools, JIT) for every path.
            await Eval(model, 8, 8);
            Raw(prompts.Take(8).ToList(), 8);
            for (int r = 0; r < repeats; r++)
            {
                foreach (int c in Levels)
                {
                    var before = engine.Statistics;
                    var s = await Eval(model, c, items);
                    if (s.Errors > 0) throw new ConsortException($"bench: {s.Errors} items failed at concurrency {c}");
                    evalRows[c].Add((s.WallSeconds, s.OutputTokens));
                    var after = engine.Statistics;
                    // Where the time went: inside llama_decode or around it (callers, waits), and on how many threads.
                    engineRows[c].Add((after.DecodeSeconds - before.DecodeSeconds, s.WallSeconds, after.DecodeCalls - before.DecodeCalls, after.OneThreadCalls - before.OneThreadCalls));
                }
                // Raw: the same prompts 8 at a time, and one sequence alone (what the hardware gives a single sequence).
                rawRows.Add(Raw(prompts, 8));
                rawSingle.Add(Raw(prompts.Take(2).ToList(), 1));
                if (votePar is not null && voteSeq is not null)
                {
                    voteRows[0].Add((await Eval(votePar, 1, voteItems)).WallSeconds / voteItems);
                    voteRows[1].Add((await Eval(voteSeq, 1, voteItems)).WallSeconds / voteItems);
                }
            }

            static double Tps((double Seconds, long Tokens) x) => x.Tokens / x.Seconds;
            JsonObject Row(string name, List<(double Seconds, long Tokens)> rows) => new()
            {
                ["run"] = name,
                ["tokens"] = rows[0].Tokens,
                ["seconds"] = Math.Round(BenchStats.Median(rows.Select(x => x.Seconds)), 3),
                ["tokens_per_second"] = Math.Round(BenchStats.Median(rows.Select(Tps)), 1),
                ["tokens_per_second_min"] = Math.Round(rows.Min(Tps), 1),
                ["tokens_per_second_max"] = Math.Round(rows.Max(Tps), 1),
            };
            double Med(List<(double Seconds, long Tokens)> rows) => BenchStats.Median(rows.Select(Tps));
            // Ratios per repeat (rows of one repeat ran back to back), then their median and range.
            var speedups = Enumerable.Range(0, repeats).Select(i => Tps(evalRows[8][i]) / Tps(evalRows[1][i])).ToList();
            var ofRaw = Enumerable.Range(0, repeats).Select(i => Tps(evalRows[8][i]) / Tps(rawRows[i])).ToList();
            var rows = new JsonArray();
            foreach (int c in Levels)
            {
                var row = Row($"single_model, concurrency {c}", evalRows[c]);
                var e = engineRows[c];
                row["decode_share"] = Math.Round(e.Sum(x => x.Decode) / e.Sum(x => x.Wall), 3);
                row["one_thread_calls"] = Math.Round((double)e.Sum(x => x.OneThread) / Math.Max(1, e.Sum(x => x.Calls)), 3);
                row["decode_calls"] = e.Sum(x => x.Calls) / repeats;
                rows.Add(row);
            }
            rows.Add(Row("raw llama_decode, 8 sequences per call", rawRows));
            rows.Add(Row("raw llama_decode, 1 sequence (2 prompts)", rawSingle));
            var stats = engine.Statistics;
            var result = new JsonObject
            {
                ["model"] = $"random-25m (generated, seed 1, {type})",
                ["parameters"] = model.Descriptor.Parameters,
                ["generate_seconds"] = Math.Round(genSeconds, 2),
                ["kv_cache"] = engine.KvCache.ToString(),
                ["threads"] = engine.Threads,
                ["items"] = items, ["tokens_per_item"] = tokens, ["repeats"] = repeats,
                ["rows"] = rows,
                ["speedup_8_vs_1"] = Math.Round(BenchStats.Median(speedups), 3),
                ["speedup_8_vs_1_range"] = $"{speedups.Min():0.00}-{speedups.Max():0.00}",
                ["speedup_raw_8_vs_1"] = Math.Round(Med(rawRows) / Med(rawSingle), 3),
                ["ratio_8_to_raw"] = Math.Round(BenchStats.Median(ofRaw), 3),
                ["ratio_8_to_raw_range"] = $"{ofRaw.Min():0.00}-{ofRaw.Max():0.00}",
                ["target_speedup"] = TargetSpeedup, ["target_ratio_to_raw"] = TargetOfRaw,
                ["meets_speedup"] = BenchStats.Median(speedups) >= TargetSpeedup,
                ["meets_ratio_to_raw"] = BenchStats.Median(ofRaw) >= TargetOfRaw,
                ["engine"] = JsonSerializer.SerializeToNode(stats),
            };
            if (votePar is not null)
            {
                var ratios = Enumerable.Range(0, repeats).Select(i => voteRows[0][i] / voteRows[1][i]).ToList();
                result["vote"] = new JsonObject
                {
                    ["items"] = voteItems, ["samples"] = 8,
                    ["seconds_per_item_at_once"] = Math.Round(BenchStats.Median(voteRows[0]), 3),
                    ["seconds_per_item_one_by_one"] = Math.Round(BenchStats.Median(voteRows[1]), 3),
                    ["ratio"] = Math.Round(BenchStats.Median(ratios), 3),
                    ["ratio_range"] = $"{ratios.Min():0.00}-{ratios.Max():0.00}",
                    ["target_ratio"] = TargetVoteRatio,
                    ["meets_target"] = BenchStats.Median(ratios) <= TargetVoteRatio,
                };
            }
            return result;
        }
        finally
        {
            try { dir.Delete(recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private static void Print(JsonObject r)
    {
        AnsiConsole.MarkupLine($"[bold]{Markup.Escape((string)r["model"]!)}[/], {(long)r["parameters"]!:N0} parameters; KV cache {Markup.Escape((string)r["kv_cache"]!)}");
        var t = new Table().Border(TableBorder.Rounded)
            .Title($"zoo:arith, {(int)r["items"]!} items x {(int)r["tokens_per_item"]!} tokens, median of {(int)r["repeats"]!}");
        foreach (var c in new[] { "run", "tokens", "seconds", "tokens/s", "range", "in llama_decode", "1-thread calls" }) t.AddColumn(c);
        foreach (var row in (JsonArray)r["rows"]!)
            t.AddRow(Markup.Escape((string)row!["run"]!), row["tokens"]!.ToString(), ((double)row["seconds"]!).ToString("0.000"),
                ((double)row["tokens_per_second"]!).ToString("0.0"), $"{(double)row["tokens_per_second_min"]!:0.0}-{(double)row["tokens_per_second_max"]!:0.0}",
                row["decode_share"] is { } d ? $"{(double)d:P0}" : "", row["one_thread_calls"] is { } o ? $"{(double)o:P0}" : "");
        AnsiConsole.Write(t);
        string Met(string key) => (bool)r[key]! ? "[green]met[/]" : "[red]missed[/]";
        AnsiConsole.MarkupLine($"concurrency 8 / concurrency 1 = [bold]{(double)r["speedup_8_vs_1"]!:0.00}[/] (range {r["speedup_8_vs_1_range"]}; target >= {TargetSpeedup:0.0}: {Met("meets_speedup")}); raw 8 / raw 1 = {(double)r["speedup_raw_8_vs_1"]!:0.00}");
        AnsiConsole.MarkupLine($"concurrency 8 / raw batched decode = [bold]{(double)r["ratio_8_to_raw"]!:0.00}[/] (range {r["ratio_8_to_raw_range"]}; target >= {TargetOfRaw:0.00}: {Met("meets_ratio_to_raw")})");
        if (r["vote"] is JsonObject v)
            AnsiConsole.MarkupLine($"majority_vote, 8 samples: {(double)v["seconds_per_item_at_once"]!:0.000} s/item at once vs {(double)v["seconds_per_item_one_by_one"]!:0.000} s/item one by one = [bold]{(double)v["ratio"]!:0.00}[/] (range {v["ratio_range"]}; target <= {TargetVoteRatio:0.0}: {((bool)v["meets_target"]! ? "[green]met[/]" : "[red]missed[/]")})");
        var e = r["engine"]!;
        AnsiConsole.MarkupLine($"[grey]engine: {e["DecodeCalls"]} llama_decode calls, {e["SequenceSteps"]} sequence steps, {e["SharedSequenceSteps"]} of them in {e["GroupCalls"]} shared calls (at most {e["MostSequencesInOneCall"]} per call), {e["ReusedPrefixTokens"]} prompt tokens reused[/]");
    }
}
