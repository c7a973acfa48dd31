using System.CommandLine;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Consort.LlamaCpp;
using Consort.Methods.Logit;
using Consort.Methods.Logit.Alignment;
using Spectre.Console;

namespace Consort.Cli.Commands;

/// <summary>
/// <c>consort bench align</c>: two models with different tokenizers (stories260k and TinyStories-656K by default), each
/// alone and fused at the byte level: bits per byte on held-out text (token-level canonical path and byte-level
/// marginal) and greedy decoding speed, token-level alone vs byte-level alone vs fused.
/// </summary>
public sealed class BenchAlignCommand : IBenchCommand
{
    /// <inheritdoc />
    public Command Build()
    {
        var modelA = new Option<string?>("--model-a") { Description = "First GGUF (default ../shared/models/stories260k/stories260K.gguf)." };
        var modelB = new Option<string?>("--model-b") { Description = "Second GGUF, any tokenizer (default ../shared/models/tinystories-656k/TinyStories-656K-Q8_0.gguf)." };
        var textOpt = new Option<string?>("--text") { Description = "Held-out text file (default docs/heldout-stories.txt)." };
        var bytesOpt = new Option<int>("--bytes") { Description = "Bytes to decode per greedy run.", DefaultValueFactory = _ => 200 };
        var repeats = new Option<int>("--repeats") { Description = "Timed decoding runs per subject (the median is reported).", DefaultValueFactory = _ => 3 };
        var beam = new Option<int>("--beam") { Description = "Tokenizations kept per byte.", DefaultValueFactory = _ => 4 };
        var prompt = new Option<string>("--prompt") { Description = "Prompt of the decoding runs.", DefaultValueFactory = _ => "Once upon a time" };
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var cmd = new Command("align", "Bits per byte and decoding speed of two models with different tokenizers, alone and fused byte by byte.");
        foreach (var o in new Option[] { modelA, modelB, textOpt, bytesOpt, repeats, beam, prompt, json }) cmd.Options.Add(o);
        cmd.SetAction(async (ParseResult pr, CancellationToken ct) =>
        {
            string root = RepoRoot();
            string a = pr.GetValue(modelA) ?? Path.Combine(root, "..", "shared", "models", "stories260k", "stories260K.gguf");
            string b = pr.GetValue(modelB) ?? Path.Combine(root, "..", "shared", "models", "tinystories-656k", "TinyStories-656K-Q8_0.gguf");
            string textPath = pr.GetValue(textOpt) ?? Path.Combine(root, "docs", "heldout-stories.txt");
            foreach (var p in new[] { a, b, textPath })
                if (!File.Exists(p)) throw new ConsortException($"file not found: {p}");
            int n = pr.GetValue(bytesOpt), reps = pr.GetValue(repeats), bm = pr.GetValue(beam);
            if (n < 1 || reps < 1 || bm < 1) throw new ConsortException("--bytes, --repeats and --beam must be positive");
            var text = File.ReadAllText(textPath).TrimEnd('\n');
            var result = await RunAsync(a, b, text, n, reps, bm, pr.GetValue(prompt)!, ct);
            if (pr.GetValue(json)) Console.WriteLine(result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            else Print(result);
            return 0;
        });
        return cmd;
    }

    /// <summary>Runs the benchmark and returns its numbers.</summary>
    public static async Task<JsonObject> RunAsync(string pathA, string pathB, string text, int bytes, int repeats, int beam, string prompt, CancellationToken ct)
    {
        int seqs = 2 * beam + 2;
        using var a = LlamaModelFactory.LoadTokenModel(new LlamaModelOptions { Path = pathA, MaxSequences = seqs, ContextSize = 1024 });
        using var b = LlamaModelFactory.LoadTokenModel(new LlamaModelOptions { Path = pathB, MaxSequences = seqs, ContextSize = 1024 });
        var ba = new ByteLevelTokenModel(a, beam);
        var bb = new ByteLevelTokenModel(b, beam);
        using var fused = new FusedTokenModel("fusion", [ba, bb], [0.5, 0.5], FusionCombine.Prob);
        int n = Encoding.UTF8.GetByteCount(text);
        var textBytes = ByteVocabulary.Instance.Encode(text);

        async Task<double> Canonical(LlamaTokenModel m)
        {
            var ids = m.Tokenizer.Encode(text, addBos: true);
            return -(await m.ScoreAsync(ids[..1], ids[1..], ct)).Sum() / Math.Log(2) / n;
        }
        async Task<(double Bpb, double Seconds)> Marginal(ITokenModel m)
        {
            var sw = Stopwatch.StartNew();
            var lp = await m.ScoreAsync([ByteVocabulary.BosId], textBytes, ct);
            return (-lp.Sum() / Math.Log(2) / n, sw.Elapsed.TotalSeconds);
        }
        var rows = new JsonArray();
        double ca = await Canonical(a), cb = await Canonical(b);
        var (ma, sa) = await Marginal(ba);
        var (mb, sb) = await Marginal(bb);
        var (mf, sf) = await Marginal(fused);

        // Greedy decoding: native token-level models produce bytes through their tokens; byte-level ones byte by byte.
        var tokenPrompt = (ITokenModel m) => m.Tokenizer.Encode(prompt, addBos: true);
        var subjects = new (string Name, ITokenModel Model, bool Bytes)[]
        {
            (a.Descriptor.Name + " (tokens)", a, false), (b.Descriptor.Name + " (tokens)", b, false),
            (a.Descriptor.Name + " (bytes)", ba, true), (b.Descriptor.Name + " (bytes)", bb, true), ("fusion (bytes)", fused, true),
        };
        var times = subjects.Select(_ => new List<double>()).ToArray();
        var produced = new int[subjects.Length];
        var samples = new string[subjects.Length];
        for (int r = -1; r < repeats; r++)   // r = -1: warm-up
            for (int i = 0; i < subjects.Length; i++)
            {
                var (name, m, isBytes) = subjects[i];
                var (secs, count, sample) = await DecodeAsync(m, isBytes ? ByteVocabulary.Instance.Encode(prompt, addBos: true) : tokenPrompt(m), bytes, ct);
                if (r >= 0) times[i].Add(secs);
                produced[i] = count; samples[i] = sample;
            }
        for (int i = 0; i < subjects.Length; i++)
        {
            double med = BenchStats.Median(times[i]);
            rows.Add(new JsonObject
            {
                ["subject"] = subjects[i].Name, ["bytes"] = produced[i], ["seconds"] = Math.Round(med, 4),
                ["bytes_per_second"] = Math.Round(produced[i] / med, 1), ["text"] = samples[i],
            });
        }
        return new JsonObject
        {
            ["text_bytes"] = n, ["beam"] = beam, ["repeats"] = repeats,
            ["bits_per_byte"] = new JsonObject
            {
                [a.Descriptor.Name + " canonical tokens"] = Math.Round(ca, 4), [b.Descriptor.Name + " canonical tokens"] = Math.Round(cb, 4),
                [a.Descriptor.Name + " bytes"] = Math.Round(ma, 4), [b.Descriptor.Name + " bytes"] = Math.Round(mb, 4), ["fusion bytes"] = Math.Round(mf, 4),
            },
            ["scoring_bytes_per_second"] = new JsonObject
            {
                [a.Descriptor.Name] = Math.Round(n / sa, 1), [b.Descriptor.Name] = Math.Round(n / sb, 1), ["fusion"] = Math.Round(n / sf, 1),
            },
            ["fusion_below_worse"] = mf < Math.Max(ma, mb),
            ["decode"] = rows,
        };
    }

    /// <summary>Greedy decoding until <paramref name="bytes"/> bytes of text (or the end); returns seconds, bytes and the text.</summary>
    private static async Task<(double Seconds, int Bytes, string Text)> DecodeAsync(ITokenModel model, int[] prompt, int bytes, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        using var seq = await model.StartAsync(prompt, ct);
        var outIds = new List<int>();
        int count = 0;
        while (count < bytes)
        {
            int t = seq.Next.ArgMax();
            if (model.Tokenizer.EndTokens.Contains(t)) break;
            outIds.Add(t);
            count = Encoding.UTF8.GetByteCount(model.Tokenizer.Decode(outIds));
            await seq.AppendAsync([t], ct);
        }
        return (sw.Elapsed.TotalSeconds, count, model.Tokenizer.Decode(outIds));
    }

    private static string RepoRoot()
    {
        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
            for (var d = new DirectoryInfo(start); d is not null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "Consort.slnx"))) return d.FullName;
        return Environment.CurrentDirectory;
    }

    private static void Print(JsonObject r)
    {
        var t = new Table().Border(TableBorder.Rounded).Title($"bits per byte on {(int)r["text_bytes"]!} held-out bytes (beam {(int)r["beam"]!})");
        t.AddColumn("model"); t.AddColumn("bits/byte");
        foreach (var (k, v) in (JsonObject)r["bits_per_byte"]!) t.AddRow(Markup.Escape(k), ((double)v!).ToString("0.0000"));
        AnsiConsole.Write(t);
        var d = new Table().Border(TableBorder.Rounded).Title($"greedy decoding, median of {(int)r["repeats"]!}");
        foreach (var c in new[] { "subject", "bytes", "seconds", "bytes/s" }) d.AddColumn(c);
        foreach (var row in (JsonArray)r["decode"]!)
            d.AddRow(Markup.Escape((string)row!["subject"]!), row["bytes"]!.ToString(), ((double)row["seconds"]!).ToString("0.000"), ((double)row["bytes_per_second"]!).ToString("0"));
        AnsiConsole.Write(d);
        AnsiConsole.MarkupLine($"fusion below the worse model: {((bool)r["fusion_below_worse"]! ? "[green]yes[/]" : "[red]no[/]")}");
    }
}
