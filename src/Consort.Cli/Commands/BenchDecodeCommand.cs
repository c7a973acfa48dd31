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
/// (logit_fusion, members decoding in parallel), and the ratio fused time / (sum of the two single times).
/// </summary>
public sealed class BenchDecodeCommand : IBenchCommand
{
    /// <summary>The target for the ratio: fusing should cost no more than running both models one after the other (+10%).</summary>
    public const double TargetRatio = 1.10;

    /// <inheritdoc />
    public Command Build()
    {
        var tokens = new Option<int>("--tokens") { Description = "Tokens to decode per run.", DefaultValueFactory = _ => 240 };
        var repeats = new Option<int>("--repeats") { Description = "Timed runs per model (the median is reported).", DefaultValueFactory = _ => 7 };
        var modelA = new Option<string?>("--model-a") { Description = "First GGUF (default ../shared/models/stories260k/stories260K.gguf)." };
        var modelB = new Option<string?>("--model-b") { Description = "Second GGUF, same vocabulary (default ../shared/models/llama2xs/llama2xs.gguf)." };
        var threads = new Option<int?>("--threads") { Description = "Threads per model (default: the loader's choice)." };
        var prompt = new Option<string>("--prompt") { Description = "Prompt text.", DefaultValueFactory = _ => "Once upon a time" };
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var cmd = new Command("decode", "Tokens/s of two models decoding alone and fused (logit_fusion), and the fused/sum time ratio.");
        foreach (var o in new Option[] { tokens, repeats, modelA, modelB, threads, prompt, json }) cmd.Options.Add(o);
        cmd.SetAction(async (ParseResult pr, CancellationToken ct) =>
        {
            int n = pr.GetValue(tokens), reps = pr.GetValue(repeats);
            if (n < 1) throw new ConsortException($"--tokens must be positive, got {n}");
            if (reps < 1) throw new ConsortException($"--repeats must be positive, got {reps}");
            string root = FindRepoRoot();
            string a = pr.GetValue(modelA) ?? Path.Combine(root, "..", "shared", "models", "stories260k", "stories260K.gguf");
            string b = pr.GetValue(modelB) ?? Path.Combine(root, "..", "shared", "models", "llama2xs", "llama2xs.gguf");
            var result = await RunAsync(a, b, n, reps, pr.GetValue(threads), pr.GetValue(prompt)!, ct);
            if (pr.GetValue(json)) Console.WriteLine(result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            else Print(result);
            return 0;
        });
        return cmd;
    }

    /// <summary>Runs the benchmark and returns its numbers.</summary>
    public static async Task<JsonObject> RunAsync(string pathA, string pathB, int tokens, int repeats, int? threads, string prompt, CancellationToken ct)
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
            ["fused_steps_parallel"] = fused.StepModes.Parallel,
            ["fused_steps_sequential"] = fused.StepModes.Sequential,
            ["target_ratio"] = TargetRatio,
            ["meets_target"] = ratio <= TargetRatio,
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
        AnsiConsole.MarkupLine($"fused time / (sum of single times) = [bold]{ratio:0.000}[/] (target <= {TargetRatio:0.00}: {((bool)r["meets_target"]! ? "[green]met[/]" : "[red]missed[/]")})");
    }
}
