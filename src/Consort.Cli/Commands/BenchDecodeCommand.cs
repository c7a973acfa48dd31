using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Consort.LlamaCpp;
using Consort.Methods.Logit;
using Spectre.Console;

namespace Consort.Cli.Commands;

/// <summary>
/// <c>consort bench decode</c>: greedy decoding speed of two same-vocabulary models alone and fused
/// (logit_fusion, members decoding in parallel), and the ratio fused time / (sum of the two single times): for two
/// generated ~25M-parameter models, and for the two tiny shared models (or the two given).
/// </summary>
public sealed class BenchDecodeCommand : IBenchCommand
{
    /// <summary>The target for the ratio on the tiny models: fusing should cost no more than running both models one after the other (+10%).</summary>
    public const double TargetRatio = 1.10;
    /// <summary>The target on the generated ~25M models, whose steps are long enough for thread hand-offs not to matter.</summary>
    public const double TargetRatioGenerated = 1.05;

    /// <inheritdoc />
    public Command Build()
    {
        var tokens = new Option<int>("--tokens") { Description = "Tokens to decode per run.", DefaultValueFactory = _ => 240 };
        var repeats = new Option<int>("--repeats") { Description = "Timed runs per model (the median is reported).", DefaultValueFactory = _ => 7 };
        var modelA = new Option<string?>("--model-a") { Description = "First GGUF (default ../shared/models/stories260k/stories260K.gguf)." };
        var modelB = new Option<string?>("--model-b") { Description = "Second GGUF, same vocabulary (default ../shared/models/llama2xs/llama2xs.gguf)." };
        var threads = new Option<int?>("--threads") { Description = "Threads per model (default: the loader's choice)." };
        var prompt = new Option<string>("--prompt") { Description = "Prompt text.", DefaultValueFactory = _ => "Once upon a time" };
        var generatedTokens = new Option<int>("--generated-tokens") { Description = "Tokens per run on the two generated ~25M models (0: skip them; skipped too when --model-a/--model-b are given).", DefaultValueFactory = _ => 64 };
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var cmd = new Command("decode", "Tokens/s of two models decoding alone and fused (logit_fusion), and the fused/sum time ratio (generated ~25M models and tiny ones).");
        foreach (var o in new Option[] { tokens, repeats, modelA, modelB, threads, prompt, generatedTokens, json }) cmd.Options.Add(o);
        cmd.SetAction(async (ParseResult pr, CancellationToken ct) =>
        {
            int n = pr.GetValue(tokens), reps = pr.GetValue(repeats);
            if (n < 1) throw new ConsortException($"--tokens must be positive, got {n}");
            if (reps < 1) throw new ConsortException($"--repeats must be positive, got {reps}");
            int gen = pr.GetValue(generatedTokens);
            if (gen < 0) throw new ConsortException($"--generated-tokens must not be negative, got {gen}");
            bool given = pr.GetValue(modelA) is not null || pr.GetValue(modelB) is not null;
            string root = FindRepoRoot();
            string a = pr.GetValue(modelA) ?? Path.Combine(root, "..", "shared", "models", "stories260k", "stories260K.gguf");
            string b = pr.GetValue(modelB) ?? Path.Combine(root, "..", "shared", "models", "llama2xs", "llama2xs.gguf");
            var results = new List<JsonObject>();
            if (!given && gen > 0) results.Add(await RunGeneratedAsync(gen, reps, pr.GetValue(threads), pr.GetValue(prompt)!, ct));
            results.Add(await RunAsync(a, b, n, reps, pr.GetValue(threads), pr.GetValue(prompt)!, ct));
            if (pr.GetValue(json))
            {
                JsonNode output = results.Count == 1 ? results[0] : new JsonObject { ["pairs"] = new JsonArray([.. results]) };
                Console.WriteLine(output.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }
            else foreach (var r in results) Print(r);
            return 0;
        });
        return cmd;
    }

    /// <summary>The benchmark on two generated ~25M-parameter models (seeds 1 and 2, one byte-level vocabulary).</summary>
    public static async Task<JsonObject> RunGeneratedAsync(int tokens, int repeats, int? threads, string prompt, CancellationToken ct)
    {
        var dir = Directory.CreateTempSubdirectory("consort-bench-decode-");
        try
        {
            string a = BenchModels.WriteRandom(dir.FullName, "random-25m-a", BenchModels.Medium, seed: 1);
            string b = BenchModels.WriteRandom(dir.FullName, "random-25m-b", BenchModels.Medium, seed: 2);
            return await RunAsync(a, b, tokens, repeats, threads, prompt, ct, TargetRatioGenerated);
        }
        finally
        {
            try { dir.Delete(recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>Runs the benchmark and returns its numbers.</summary>
    public static async Task<JsonObject> RunAsync(string pathA, string pathB, int tokens, int repeats, int? threads, string prompt, CancellationToken ct,
        double targetRatio = TargetRatio)
    {
        using var a = LlamaModelFactory.Load(new LlamaModelOptions { Path = pathA, MaxSequences = 1, Threads = threads });
        using var b = LlamaModelFactory.Load(new LlamaModelOptions { Path = pathB, MaxSequences = 1, Threads = threads });
        SharedVocabulary.Require([a.Descriptor, b.Descriptor], "bench decode");
        using var fused = new FusedTokenModel("fused", [a.Tokens!, b.Tokens!], [0.5, 0.5], FusionCombine.Prob);
        var ids = a.Tokens!.Tokenizer.Encode(prompt, addBos: true);
        int room = Math.Min(a.Descriptor.ContextSize, b.Descriptor.ContextSize) - ids.Length;
        if (tokens > room)
            throw new ConsortException($"--tokens {tokens} does not fit: the smaller context ({Math.Min(a.Descriptor.ContextSize, b.Descriptor.ContextSize)}) leaves {room} tokens after the prompt");
        ITokenModel[] subjects = [a.Tokens!, b.Tokens!, fused];
        var times = subjects.Select(_ => new List<double>()).ToArray();
        // One warm-up run each, then interleaved timed runs so machine noise hits all three alike.
        foreach (var m in subjects) await DecodeAsync(m, ids, tokens, ct);
        for (int r = 0; r < repeats; r++)
            for (int i = 0; i < subjects.Length; i++)
                times[i].Add(await DecodeAsync(subjects[i], ids, tokens, ct));
        double[] med = times.Select(BenchStats.Median).ToArray();
        double ratio = med[2] / (med[0] + med[1]);
        var perRepeat = Enumerable.Range(0, repeats).Select(r => times[2][r] / (times[0][r] + times[1][r])).ToList();
        JsonObject Row(string name, double seconds) => new()
        {
            ["model"] = name, ["tokens"] = tokens, ["seconds"] = Math.Round(seconds, 5), ["tokens_per_second"] = Math.Round(tokens / seconds, 1),
        };
        return new JsonObject
        {
            ["prompt_tokens"] = ids.Length,
            ["repeats"] = repeats,
            ["runs"] = new JsonArray(Row(a.Name, med[0]), Row(b.Name, med[1]), Row($"fused ({a.Name} + {b.Name})", med[2])),
            ["ratio_fused_to_sum"] = Math.Round(ratio, 3),
            ["ratio_range"] = $"{perRepeat.Min():0.00}-{perRepeat.Max():0.00}",
            ["fused_steps_parallel"] = fused.StepModes.Parallel,
            ["fused_steps_sequential"] = fused.StepModes.Sequential,
            ["target_ratio"] = targetRatio,
            ["meets_target"] = ratio <= targetRatio,
        };
    }

    /// <summary>Greedy decoding of <paramref name="tokens"/> tokens (end tokens are not honored, so every run has the same length); returns seconds.</summary>
    private static async Task<double> DecodeAsync(ITokenModel model, int[] prompt, int tokens, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        using var seq = await model.StartAsync(prompt, ct);
        for (int i = 0; i < tokens; i++)
        {
            int t = seq.Next.ArgMax();
            if (i + 1 < tokens) await seq.AppendAsync([t], ct);
        }
        return sw.Elapsed.TotalSeconds;
    }


    private static string FindRepoRoot()
    {
        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "Consort.slnx"))) return d.FullName;
        }
        return Environment.CurrentDirectory;
    }

    private static void Print(JsonObject r)
    {
        var t = new Table().Border(TableBorder.Rounded).Title($"greedy decode, prompt {(int)r["prompt_tokens"]!} tokens, median of {(int)r["repeats"]!}");
        foreach (var c in new[] { "model", "tokens", "seconds", "tokens/s" }) t.AddColumn(c);
        foreach (var row in (JsonArray)r["runs"]!)
            t.AddRow(Markup.Escape((string)row!["model"]!), row["tokens"]!.ToString(), ((double)row["seconds"]!).ToString("0.0000"), ((double)row["tokens_per_second"]!).ToString("0.0"));
        AnsiConsole.Write(t);
        double ratio = (double)r["ratio_fused_to_sum"]!;
        AnsiConsole.MarkupLine($"[grey]fused steps: {(long)r["fused_steps_parallel"]!} with members in parallel, {(long)r["fused_steps_sequential"]!} one after the other (chosen by measured speed)[/]");
        AnsiConsole.MarkupLine($"fused time / (sum of single times) = [bold]{ratio:0.000}[/] (repeats {r["ratio_range"]}; target <= {(double)r["target_ratio"]!:0.00}: {((bool)r["meets_target"]! ? "[green]met[/]" : "[red]missed[/]")})");
    }
}
