using System.CommandLine;
using System.Text.Json;
using Consort.Formats.Gguf;
using Consort.Training;

namespace Consort.Cli.Commands;

/// <summary>
/// <c>consort train</c>: train a tiny LLaMA (random init, full fine-tune, or a LoRA adapter for an existing GGUF) on text or
/// prompt/answer pairs.
/// </summary>
public sealed class TrainCommand : ICliCommand
{
    /// <inheritdoc />
    public Command Build()
    {
        var cmd = new Command("train", "Train a tiny LLaMA with a byte-level tokenizer on the CPU (ggml AdamW, warm-up + cosine) and write a GGUF; "
            + "with --from and --lora-rank, train a LoRA adapter for that model instead (its weights stay frozen) and write the adapter.");
        var outOpt = new Option<string>("--out") { Description = "Output GGUF path: the model, or with --lora-rank the LoRA adapter (llama.cpp format)", Required = true };
        var from = new Option<string?>("--from") { Description = "Start from this GGUF (path, zoo:NAME or hf:owner/repo/file.gguf) instead of random init" };
        var text = new Option<string?>("--text") { Description = "Plain-text corpus (one example per non-empty line)" };
        var pairs = new Option<string?>("--pairs") { Description = "Dataset JSON in the shared layout (input/output pairs; path or zoo:NAME)" };
        var split = new Option<string>("--split") { Description = "Split of --pairs to train on", DefaultValueFactory = _ => "dev" };
        var fullLoss = new Option<bool>("--full-loss") { Description = "With --pairs: loss on prompt tokens too (default: answer only)" };
        var steps = new Option<int>("--steps") { Description = "Optimizer steps", DefaultValueFactory = _ => 500 };
        var lr = new Option<float>("--lr") { Description = "Peak learning rate", DefaultValueFactory = _ => 2e-3f };
        var warmup = new Option<int>("--warmup") { Description = "Warm-up steps", DefaultValueFactory = _ => 30 };
        var batch = new Option<int>("--batch") { Description = "Windows per step", DefaultValueFactory = _ => 16 };
        var seqLen = new Option<int>("--seq-len") { Description = "Tokens per window (default 64; with --pairs, raised to hold the longest pair when not given)", DefaultValueFactory = _ => 64 };
        var dim = new Option<int>("--dim") { Description = "Model width (random init)", DefaultValueFactory = _ => 128 };
        var layers = new Option<int>("--layers") { Description = "Blocks (random init)", DefaultValueFactory = _ => 4 };
        var heads = new Option<int>("--heads") { Description = "Heads (random init)", DefaultValueFactory = _ => 4 };
        var ffn = new Option<int>("--ffn") { Description = "FFN width (random init)", DefaultValueFactory = _ => 384 };
        var seed = new Option<int>("--seed") { Description = "Seed (init and sampling)", DefaultValueFactory = _ => 1 };
        var threads = new Option<int>("--threads") { Description = "Threads", DefaultValueFactory = _ => Environment.ProcessorCount };
        var evalEvery = new Option<int>("--eval-every") { Description = "Held-out loss every N steps", DefaultValueFactory = _ => 100 };
        var ckpt = new Option<int>("--checkpoint-every") { Description = "Write OUT.ckpt.gguf (F32) every N steps (0: never)", DefaultValueFactory = _ => 0 };
        var type = new Option<string>("--type") { Description = "Matrix type of the output model (with --lora-rank: of --merge-out; adapters are F32): float16 (f16) or float32 (f32)", DefaultValueFactory = _ => "f16" };
        var loraRank = new Option<int?>("--lora-rank") { Description = "Train a LoRA adapter of this rank for the --from model (frozen) instead of all weights; --out gets the adapter" };
        var loraAlpha = new Option<float?>("--lora-alpha") { Description = "LoRA alpha (the update is scaled by alpha/rank; default 2 x rank)" };
        var loraTargets = new Option<string?>("--lora-targets") { Description = "Comma-separated block matrices to adapt (default: " + string.Join(",", LoraSettings.AllTargets) + ")" };
        var mergeOut = new Option<string?>("--merge-out") { Description = "With --lora-rank: also write the merged model (base + adapter) to this GGUF" };
        foreach (var o in new Option[] { outOpt, from, text, pairs, split, fullLoss, steps, lr, warmup, batch, seqLen, dim, layers, heads, ffn, seed, threads, evalEvery, ckpt, type, loraRank, loraAlpha, loraTargets, mergeOut })
            cmd.Options.Add(o);
        cmd.SetAction((ParseResult pr, CancellationToken ct) =>
        {
            var output = pr.GetValue(outOpt)!;
            // The same dtype words as convert and merge; the trainer writes F16 or F32.
            var t = Consort.Formats.Safetensors.SafetensorsDType.ParseUser(pr.GetValue(type)!) switch
            {
                GgmlType.F16 => GgmlType.F16, GgmlType.F32 => GgmlType.F32,
                _ => throw new ConsortException($"--type {pr.GetValue(type)}: train writes float16 (f16) or float32 (f32)"),
            };
            // Every output path is checked before training starts.
            OutputPaths.CheckFile(output, "--out");
            if (pr.GetValue(mergeOut) is { } mo) OutputPaths.CheckFile(mo, "--merge-out");
            var lora = LoraFromOptions(pr.GetValue(loraRank), pr.GetValue(loraAlpha), pr.GetValue(loraTargets), pr.GetValue(mergeOut), pr.GetValue(from), pr.GetValue(seed));
            var source = LoadSource(pr.GetValue(text), pr.GetValue(pairs), pr.GetValue(split)!, !pr.GetValue(fullLoss), out var holdout, out int longest, out string? longestId);
            var fromPath = pr.GetValue(from) is { } f ? (Consort.Config.ModelReferenceResolver.IsReference(f) ? Consort.Config.ModelReferenceResolver.Resolve(f) : f) : null;
            TinyLlamaConfig cfg;
            if (fromPath is not null)
            {
                if (!File.Exists(fromPath)) throw new ConsortException($"--from {fromPath}: file not found");
                using var g = GgufFile.Open(fromPath);
                cfg = TinyLlamaConfig.FromGguf(g);
            }
            else cfg = new TinyLlamaConfig { Dim = pr.GetValue(dim), Layers = pr.GetValue(layers), Heads = pr.GetValue(heads), Ffn = pr.GetValue(ffn) };
            int windowLength = FitWindow(pr.GetValue(seqLen), pr.GetResult(seqLen) is { Implicit: false }, longest, longestId, cfg.Context);
            int b = pr.GetValue(batch), sl = windowLength, s = pr.GetValue(seed);
            using var trainer = new TinyLlamaTrainer(cfg, b, sl, pr.GetValue(threads), lora)
            {
                Optimizer = new OptimizerSettings { LearningRate = pr.GetValue(lr), WarmupSteps = pr.GetValue(warmup) },
            };
            if (fromPath is not null) trainer.LoadGguf(fromPath); else trainer.InitializeRandom(s);
            Console.WriteLine(lora is null
                ? $"training {cfg.ParameterCount:N0} parameters {(fromPath is null ? "from random init" : "from " + fromPath)}; {pr.GetValue(steps)} steps of {b}x{sl} tokens"
                : $"training a LoRA adapter for {fromPath} (frozen, {cfg.ParameterCount:N0} parameters): rank {lora.Rank}, alpha {lora.Alpha:G4}, targets {string.Join(",", lora.Targets)}; "
                  + $"{trainer.TrainableParameterCount:N0} trainable parameters; {pr.GetValue(steps)} steps of {b}x{sl} tokens");
            var plan = new TrainingPlan
            {
                Steps = pr.GetValue(steps), EvalEvery = pr.GetValue(evalEvery), CheckpointEvery = pr.GetValue(ckpt),
                CheckpointPath = Path.ChangeExtension(output, ".ckpt.gguf"), ReportEvery = 25,
            };
            var r = TrainingLoop.Run(trainer, new BatchSampler(source, b, sl, s), new BatchSampler(holdout, b, sl, s + 7919), plan,
                p => Console.WriteLine($"step {p.Step}/{p.TotalSteps}  loss {p.Loss:F4}  lr {p.LearningRate:G3}  {p.TokensPerSecond:F0} tok/s" + (p.EvalLoss is { } e ? $"  eval {e:F4}" : "")), ct);
            var stats = $"loss {r.FinalLoss:F4}, eval {r.EvalLoss:F4}, {r.Seconds:F0} s, {r.TokensPerSecond:F0} tok/s";
            if (lora is null)
            {
                trainer.SaveGguf(output, Path.GetFileNameWithoutExtension(output), t);
                Console.WriteLine($"wrote {output}: {stats}");
                return Task.FromResult(0);
            }
            if (pr.GetValue(mergeOut) is { } merged)
            {
                trainer.SaveGguf(merged, Path.GetFileNameWithoutExtension(merged), t);
                Console.WriteLine($"wrote merged model {merged} ({new FileInfo(merged).Length:N0} bytes)");
            }
            trainer.SaveLoraAdapter(output);
            Console.WriteLine($"wrote LoRA adapter {output} ({new FileInfo(output).Length:N0} bytes, {trainer.TrainableParameterCount:N0} trainable parameters, rank {lora.Rank}, alpha {lora.Alpha:G4}; "
                + $"use it with the base {fromPath}): {stats}");
            return Task.FromResult(0);
        });
        return cmd;
    }

    /// <summary>LoRA settings from the options, or null for full training; rejects LoRA options that cannot apply.</summary>
    private static LoraSettings? LoraFromOptions(int? rank, float? alpha, string? targets, string? mergeOut, string? from, int seed)
    {
        if (rank is null)
        {
            if (alpha is not null || targets is not null || mergeOut is not null)
                throw new ConsortException("--lora-alpha, --lora-targets and --merge-out need --lora-rank");
            return null;
        }
        if (from is null) throw new ConsortException("--lora-rank needs --from BASE.gguf: a LoRA adapter is trained for an existing model, whose weights stay frozen");
        if (rank <= 0) throw new ConsortException($"--lora-rank {rank}: the rank must be a positive integer");
        var s = new LoraSettings
        {
            Rank = rank.Value, Alpha = alpha ?? 2f * rank.Value, Seed = seed,
            Targets = targets is null ? LoraSettings.AllTargets : LoraSettings.ParseTargets(targets),
        };
        try { s.Validate(); }
        catch (ConsortException e) { throw new ConsortException("--lora-*: " + e.Message, e); }
        return s;
    }

    /// <summary>
    /// The window length: the given one when every pair fits; otherwise, when --seq-len was not given, the smallest
    /// multiple of 16 that holds the longest pair (within the model's context), said in a message; a given --seq-len
    /// that cannot hold the pairs is refused, since windows that cut answers off train a model that cannot answer.
    /// </summary>
    private static int FitWindow(int seqLen, bool explicitLength, int longest, string? longestId, int context)
    {
        // A window of L tokens trains predictions of tokens 1..L of an example (BOS + prompt + answer + EOS).
        int needed = longest - 1;
        if (longest == 0 || needed <= seqLen) return seqLen;
        int fitted = (needed + 15) / 16 * 16;
        if (fitted > context)
        {
            if (needed > context)
                throw new ConsortException($"--pairs: the longest pair ({longest} tokens, item '{longestId}') does not fit the model's context of {context} tokens; shorten the pairs or train a model with a longer context");
            fitted = context;
        }
        if (explicitLength)
            throw new ConsortException($"--seq-len {seqLen} cannot hold the longest pair ({longest} tokens with BOS/EOS, item '{longestId}'): windows would cut answers off; use --seq-len {fitted} or more (or leave --seq-len out to have it chosen)");
        Console.WriteLine($"--seq-len {fitted}: the longest pair is {longest} tokens with BOS/EOS (item '{longestId}'), more than the default window of {seqLen}");
        return fitted;
    }

    private static Func<Random, TrainingExample> LoadSource(string? text, string? pairs, string split, bool answerOnly, out Func<Random, TrainingExample> holdout,
        out int longest, out string? longestId)
    {
        longest = 0; longestId = null;
        if ((text is null) == (pairs is null)) throw new ConsortException("give exactly one of --text FILE or --pairs DATASET");
        if (text is not null)
        {
            if (!File.Exists(text)) throw new ConsortException($"--text {text}: file not found");
            var lines = File.ReadAllLines(text).Where(l => l.Trim().Length > 0).ToArray();
            if (lines.Length < 2) throw new ConsortException($"--text {text}: needs at least two non-empty lines");
            // Every 20th line is held out for the eval loss.
            var held = lines.Where((_, i) => i % 20 == 19).DefaultIfEmpty(lines[^1]).ToArray();
            var train = lines.Where((_, i) => i % 20 != 19).ToArray();
            holdout = rng => TrainingExample.FromText(held[rng.Next(held.Length)]);
            return rng => TrainingExample.FromText(train[rng.Next(train.Length)]);
        }
        var path = Zoo.IsZooReference(pairs) ? Zoo.ResolveDataset(pairs!) : pairs!;
        if (Directory.Exists(path)) throw new ConsortException($"--pairs {path}: is a folder; give a dataset JSON file");
        if (!File.Exists(path)) throw new ConsortException($"--pairs {path}: file not found");
        var doc = Consort.Formats.SafeJson.ParseDocumentFile(path, Limits.MaxDatasetBytes, "a dataset", Consort.Formats.SafeJson.Kind.Data);
        using var parsed = doc;
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new ConsortException($"--pairs {path}: expected a dataset object with \"dev\"/\"test\" arrays");
        string kind = doc.RootElement.TryGetProperty("task_type", out var tt) && tt.ValueKind == JsonValueKind.String ? tt.GetString()! : "exact_match";
        (string Id, string Input, string Output)[] Items(string name)
        {
            if (!doc.RootElement.TryGetProperty(name, out var arr) || arr.ValueKind != JsonValueKind.Array)
                throw new ConsortException($"--pairs {path}: no '{name}' array; splits: {string.Join(", ", doc.RootElement.EnumerateObject().Where(p => p.Value.ValueKind == JsonValueKind.Array).Select(p => p.Name))}");
            return arr.EnumerateArray().Select((e, i) =>
            {
                string id = e.ValueKind == JsonValueKind.Object && e.TryGetProperty("id", out var idv) ? idv.ToString() : i.ToString(System.Globalization.CultureInfo.InvariantCulture);
                if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty("input", out var inp) || inp.ValueKind != JsonValueKind.String
                    || !e.TryGetProperty("output", out var outp) || outp.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined)
                    throw new ConsortException(kind == "multiple_choice"
                        ? $"--pairs {path}: a {kind} set (question, choices, answer) is not prompt/answer pairs; train --pairs takes items with \"input\" and \"output\" (exact_match, f1_match)"
                        : $"--pairs {path}: {name} item '{id}' has no \"input\" text and \"output\" (train --pairs takes prompt/answer pairs)");
                return (id, inp.GetString()!, outp.ValueKind == JsonValueKind.String ? outp.GetString()! : outp.ToString());
            }).ToArray();
        }
        var tr = Items(split);
        if (tr.Length == 0) throw new ConsortException($"--pairs {path}: split '{split}' is empty");
        var other = split == "dev" ? "test" : "dev";
        var ev = doc.RootElement.TryGetProperty(other, out _) ? Items(other) : tr;
        if (ev.Length == 0) ev = tr;
        foreach (var (id, i, o) in tr)
        {
            int len = TrainingExample.FromPair(i, " " + o, answerOnly).Tokens.Length;
            if (len > longest) { longest = len; longestId = id; }
        }
        var trainPairs = tr.Select(x => (x.Input, x.Output)).ToArray();
        var evalPairs = ev.Select(x => (x.Input, x.Output)).ToArray();
        holdout = rng => { var (i, o) = evalPairs[rng.Next(evalPairs.Length)]; return TrainingExample.FromPair(i, " " + o, answerOnly); };
        return rng => { var (i, o) = trainPairs[rng.Next(trainPairs.Length)]; return TrainingExample.FromPair(i, " " + o, answerOnly); };
    }
}
