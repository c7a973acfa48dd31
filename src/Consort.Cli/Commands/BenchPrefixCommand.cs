using System.CommandLine;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Consort.LlamaCpp;
using Spectre.Console;

namespace Consort.Cli.Commands;

/// <summary>
/// <c>consort bench prefix</c>: what prefix reuse saves on a generated ~25M-parameter model. The same work runs on two
/// contexts of one model, prefix reuse on and off: few-shot prompts (one shared block of solved sums, then a question)
/// started one after the other and eight at once, and likelihood scoring of four choices after each question. Reports
/// prompt tokens computed and seconds for each, with the ratios, and how far the results moved.
/// Repeats are interleaved; medians are reported.
/// </summary>
public sealed class BenchPrefixCommand : IBenchCommand
{
    /// <inheritdoc />
    public Command Build()
    {
        var questions = new Option<int>("--questions") { Description = "Questions (prompts) per row.", DefaultValueFactory = _ => 16 };
        var shots = new Option<int>("--shots") { Description = "Solved examples in the shared few-shot prefix.", DefaultValueFactory = _ => 8 };
        var repeats = new Option<int>("--repeats") { Description = "Timed runs of each row (the median is reported).", DefaultValueFactory = _ => 3 };
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var cmd = new Command("prefix", "Prefix reuse on vs off on a generated ~25M model: few-shot prompts one by one and 8 at once, scoring 4 choices per question.");
        foreach (var o in new Option[] { questions, shots, repeats, json }) cmd.Options.Add(o);
        cmd.SetAction(async (ParseResult pr, CancellationToken ct) =>
        {
            int q = pr.GetValue(questions), s = pr.GetValue(shots), reps = pr.GetValue(repeats);
            if (q is < 8 or > 1000) throw new ConsortException($"--questions must be 8..1000, got {q}");
            if (s is < 1 or > 24) throw new ConsortException($"--shots must be 1..24, got {s}");
            if (reps is < 1 or > 100) throw new ConsortException($"--repeats must be 1..100, got {reps}");
            var result = await RunAsync(q, s, reps, ct);
            if (pr.GetValue(json)) Console.WriteLine(result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            else Print(result);
            return 0;
        });
        return cmd;
    }

    private sealed record Work(string Name, Func<LlamaTokenModel, List<int[]>, CancellationToken, Task<List<float[]>>> Run);

    /// <summary>Runs the benchmark and returns its numbers.</summary>
    public static async Task<JsonObject> RunAsync(int questions, int shots, int repeats, CancellationToken ct)
    {
        var dir = Directory.CreateTempSubdirectory("consort-bench-prefix-");
        try
        {
            string path = BenchModels.WriteRandom(dir.FullName, "random-25m", BenchModels.Medium, seed: 1);
            LlamaModelOptions Options(bool reuse) => new() { Path = path, Name = reuse ? "reuse" : "no-reuse", ContextSize = 512, MaxSequences = 8, PrefixReuse = reuse };
            using var on = LlamaModelFactory.LoadTokenModel(Options(true));
            using var off = LlamaModelFactory.LoadTokenModel(Options(false));

            // A few-shot block of solved sums shared by every prompt, then a question. Every round gets new questions, so
            // that what is reused is the shared prefix, not a whole prompt cached by an earlier round.
            var rng = new Random(7);
            static string Sum(Random g) { int a = g.Next(10, 100), b = g.Next(10, 100); return $"Question: what is {a} + {b}?\nAnswer: "; }
            var prefix = new StringBuilder("Answer each question with a number.\n\n");
            for (int i = 0; i < shots; i++) prefix.Append(Sum(rng)).Append(rng.Next(20, 200)).Append("\n\n");
            var tok = on.Tokenizer;
            List<int[]> Prompts(int round)
            {
                var g = new Random(1000 + round);
                return Enumerable.Range(0, questions).Select(_ => tok.Encode(prefix + Sum(g), addBos: true)).ToList();
            }
            int[][] choices = [tok.Encode("42"), tok.Encode("117"), tok.Encode("86"), tok.Encode("150")];

            async Task<float[]> First(LlamaTokenModel m, int[] p, CancellationToken c)
            {
                using var seq = await m.StartAsync(p, c);
                return (float[])seq.Next.Logits!.Clone();
            }
            var work = new Work[]
            {
                new("few-shot prompts, one by one", async (m, prompts, c) =>
                {
                    var r = new List<float[]>();
                    foreach (var p in prompts) r.Add(await First(m, p, c));
                    return r;
                }),
                new("few-shot prompts, 8 at once", async (m, prompts, c) =>
                {
                    var r = new List<float[]>();
                    foreach (var chunk in prompts.Chunk(8)) r.AddRange(await Task.WhenAll(chunk.Select(p => Task.Run(() => First(m, p, c), c))));
                    return r;
                }),
                new("4 choices scored per question", async (m, prompts, c) =>
                {
                    var r = new List<float[]>();
                    foreach (var p in prompts)
                        r.AddRange(await Task.WhenAll(choices.Select(ch => Task.Run(async () => await m.ScoreAsync(p, ch, c), c))));
                    return r;
                }),
            };

            // Warm-up, and how far reuse moves the results (F16 weights: llama.cpp's CPU matrix kernels round a prompt
            // computed in one chunk slightly differently from the same tokens split across chunks).
            int round = 0;
            double maxDiff = 0;
            long differing = 0, compared = 0;
            foreach (var w in work)
            {
                var ps = Prompts(round++);
                var a = await w.Run(on, ps, ct);
                var b = await w.Run(off, ps, ct);
                for (int i = 0; i < a.Count; i++)
                {
                    compared++;
                    if (a[i].AsSpan().SequenceEqual(b[i])) continue;
                    differing++;
                    for (int v = 0; v < a[i].Length; v++) maxDiff = Math.Max(maxDiff, Math.Abs(a[i][v] - b[i][v]));
                }
            }
            var times = work.Select(_ => (On: new List<double>(), Off: new List<double>())).ToArray();
            var computed = new (long On, long Off)[work.Length];
            for (int r = 0; r < repeats; r++)
            {
                for (int k = 0; k < work.Length; k++)
                {
                    var ps = Prompts(round++);
                    foreach (var (m, reuse) in r % 2 == 0 ? new[] { (on, true), (off, false) } : [(off, false), (on, true)])
                    {
                        var before = m.Statistics;
                        var sw = Stopwatch.StartNew();
                        await work[k].Run(m, ps, ct);
                        double secs = sw.Elapsed.TotalSeconds;
                        var after = m.Statistics;
                        // Tokens computed: fed tokens, prompt and decode alike (the rows here feed prompts only).
                        long fed = after.DecodedTokens - before.DecodedTokens;
                        if (reuse) { times[k].On.Add(secs); computed[k].On = fed; }
                        else { times[k].Off.Add(secs); computed[k].Off = fed; }
                    }
                }
            }
            var rows = new JsonArray();
            for (int k = 0; k < work.Length; k++)
            {
                var ratios = Enumerable.Range(0, repeats).Select(i => times[k].On[i] / times[k].Off[i]).ToList();
                rows.Add(new JsonObject
                {
                    ["work"] = work[k].Name,
                    ["tokens_computed_reuse"] = computed[k].On, ["tokens_computed_no_reuse"] = computed[k].Off,
                    ["tokens_ratio"] = Math.Round((double)computed[k].On / computed[k].Off, 3),
                    ["seconds_reuse"] = Math.Round(BenchStats.Median(times[k].On), 3),
                    ["seconds_no_reuse"] = Math.Round(BenchStats.Median(times[k].Off), 3),
                    ["time_ratio"] = Math.Round(BenchStats.Median(ratios), 3),
                    ["time_ratio_range"] = $"{ratios.Min():0.00}-{ratios.Max():0.00}",
                });
            }
            return new JsonObject
            {
                ["model"] = "random-25m (generated, seed 1)",
                ["parameters"] = on.Descriptor.Parameters,
                ["questions"] = questions, ["shots"] = shots,
                ["prompt_tokens"] = Prompts(0)[0].Length, ["prefix_tokens"] = tok.Encode(prefix.ToString(), addBos: true).Length,
                ["repeats"] = repeats, ["threads"] = on.Threads,
                ["rows"] = rows,
                ["results_compared"] = compared, ["results_differing"] = differing, ["max_difference"] = maxDiff,
                ["engine_reuse"] = JsonSerializer.SerializeToNode(on.Statistics),
            };
        }
        finally
        {
            try { dir.Delete(recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private static void Print(JsonObject r)
    {
        AnsiConsole.MarkupLine($"[bold]{Markup.Escape((string)r["model"]!)}[/], {(long)r["parameters"]!:N0} parameters; prompts of {r["prompt_tokens"]} tokens, {r["prefix_tokens"]} of them a shared {r["shots"]}-shot prefix");
        var t = new Table().Border(TableBorder.Rounded).Title($"{r["questions"]} questions, prefix reuse on vs off, median of {r["repeats"]}");
        foreach (var c in new[] { "work", "tokens computed (on / off)", "ratio", "seconds (on / off)", "time ratio", "range" }) t.AddColumn(c);
        foreach (var row in (JsonArray)r["rows"]!)
            t.AddRow(Markup.Escape((string)row!["work"]!), $"{row["tokens_computed_reuse"]} / {row["tokens_computed_no_reuse"]}", $"{(double)row["tokens_ratio"]!:0.000}",
                $"{(double)row["seconds_reuse"]!:0.000} / {(double)row["seconds_no_reuse"]!:0.000}", $"[bold]{(double)row["time_ratio"]!:0.00}[/]", Markup.Escape((string)row["time_ratio_range"]!));
        AnsiConsole.Write(t);
        var e = r["engine_reuse"]!;
        AnsiConsole.MarkupLine($"[grey]with reuse: {e["ReusedPrefixTokens"]} prompt tokens taken from cached prefixes, {e["CopiedPrefixes"]} prefixes copied between sequences[/]");
        AnsiConsole.MarkupLine(r["results_differing"]!.GetValue<long>() == 0
            ? $"results with and without reuse identical bit for bit ({r["results_compared"]} compared)"
            : $"results with and without reuse: {r["results_differing"]} of {r["results_compared"]} differ, by at most {(double)r["max_difference"]!:g3} (logits or log-probabilities)");
    }
}
