using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Consort.Formats.Gguf;
using Consort.LlamaCpp;
using Spectre.Console;

namespace Consort.Cli.Commands;

/// <summary><c>consort inspect MODEL.gguf</c>: what a GGUF file holds, read and validated in managed code (the loader's verdict; exit code 1 when llama.cpp must not load it).</summary>
public sealed class InspectCommand : ICliCommand
{
    private static readonly Dictionary<long, string> FileTypes = new()
    {
        [0] = "F32", [1] = "F16", [2] = "Q4_0", [3] = "Q4_1", [7] = "Q8_0", [8] = "Q5_0", [9] = "Q5_1", [10] = "Q2_K",
        [11] = "Q3_K_S", [12] = "Q3_K_M", [13] = "Q3_K_L", [14] = "Q4_K_S", [15] = "Q4_K_M", [16] = "Q5_K_S", [17] = "Q5_K_M",
        [18] = "Q6_K", [19] = "IQ2_XXS", [20] = "IQ2_XS", [24] = "IQ1_S", [25] = "IQ4_NL", [30] = "IQ4_XS", [32] = "BF16", [38] = "MXFP4_MOE",
    };

    /// <inheritdoc />
    public Command Build()
    {
        var model = new Argument<string>("model") { Description = "A .gguf model or LoRA adapter file, zoo:NAME or hf:owner/repo/file.gguf." };
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var sequences = new Option<int>("--max-sequences") { Description = "Sequences the KV cache is sized for (a model entry's max_sequences).", DefaultValueFactory = _ => 4 };
        var context = new Option<int?>("--context-size") { Description = "Tokens per sequence the KV cache is sized for (default: min(model context, 2048), as the loader)." };
        var cmd = new Command("inspect", "Show a GGUF file's architecture, size, vocabulary, tensors, KV cache size and what Consort can do with it.");
        cmd.Arguments.Add(model);
        cmd.Options.Add(json);
        cmd.Options.Add(sequences);
        cmd.Options.Add(context);
        cmd.SetAction(pr =>
        {
            int seqs = pr.GetValue(sequences);
            if (seqs is < 1 or > 64) throw new ConsortException($"--max-sequences must be 1..64, got {seqs}");
            if (pr.GetValue(context) is < 2) throw new ConsortException($"--context-size must be at least 2, got {pr.GetValue(context)}");
            var report = Inspect(Consort.Config.ModelReferenceResolver.Resolve(pr.GetValue(model)!), seqs, pr.GetValue(context));
            if (pr.GetValue(json))
                Console.WriteLine(report.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            else
                Print(report);
            // The same verdict the llama.cpp loader, run and serve give: a file that fails it is never loaded.
            if (report["valid"]?.GetValue<bool>() == false)
            {
                Console.Error.WriteLine($"error: {report["path"]}: {report["verdict"]}");
                return 1;
            }
            return 0;
        });
        return cmd;
    }

    /// <summary>Reads <paramref name="path"/> (throws <see cref="ModelFileException"/> for a bad file) into a JSON report.</summary>
    public static JsonObject Inspect(string path, int maxSequences = 4, int? contextSize = null)
    {
        using var g = GgufFile.Open(path);
        var verdict = GgufValidator.Validate(g);
        string? arch = g.Architecture;
        long? Int(string key) => arch is null ? null : g.GetInt($"{arch}.{key}");
        bool adapter = g.FileKind == "adapter";
        var vocab = g.Vocabulary;
        long? ftype = g.GetInt(GgufKeys.General.FileType);
        var typeCounts = g.Tensors.GroupBy(t => t.Type).OrderByDescending(x => x.Count())
            .ToDictionary(x => x.Key.ToString(), x => x.Count());
        string fileType = ftype is { } f ? FileTypes.GetValueOrDefault(f, $"type {f}") : typeCounts.Keys.FirstOrDefault() ?? "-";
        var access = adapter ? ModelAccess.Weights : ModelAccess.Text | ModelAccess.FullLogits | ModelAccess.Weights;
        var caps = new JsonArray(Enum.GetValues<ModelAccess>().Where(a => a is not ModelAccess.None and not ModelAccess.Tokens && access.HasFlag(a))
            .Select(a => (JsonNode)JsonValue.Create(a.Describe())!).ToArray());
        return new JsonObject
        {
            ["path"] = g.Path,
            ["name"] = g.GetString(GgufKeys.General.Name),
            ["kind"] = adapter ? "lora_adapter" : "model",
            ["gguf_version"] = g.Version,
            ["size_bytes"] = g.Length,
            ["architecture"] = arch,
            ["parameters"] = g.ParameterCount,
            ["layers"] = Int("block_count"),
            ["embedding"] = Int("embedding_length"),
            ["heads"] = Int("attention.head_count"),
            ["kv_heads"] = Int("attention.head_count_kv"),
            ["feed_forward"] = Int("feed_forward_length"),
            ["context_length"] = Int("context_length"),
            ["vocabulary"] = vocab is null ? null : new JsonObject { ["size"] = vocab.Size, ["kind"] = vocab.Kind, ["sha256"] = vocab.Hash },
            ["chat_template"] = g.GetString(GgufKeys.Tokenizer.ChatTemplate) is { Length: > 0 },
            ["file_type"] = fileType,
            ["tensor_count"] = g.Tensors.Count,
            ["tensor_types"] = new JsonObject(typeCounts.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
            ["lora_alpha"] = adapter ? g.GetFloat(GgufKeys.Adapter.LoraAlpha) : null,
            ["kv_cache"] = adapter ? null : KvCache(g, arch, maxSequences, contextSize),
            ["capabilities"] = caps,
            ["valid"] = verdict.IsValid,
            ["verdict"] = verdict.Summary,
            ["problems"] = new JsonArray(verdict.Problems.Select(p => (JsonNode)JsonValue.Create(p)!).ToArray()),
            ["tensors_checked"] = verdict.TensorsChecked,
        };
    }

    /// <summary>The KV cache the llama.cpp loader allocates for this model (F16 keys and values, one stream per sequence).</summary>
    private static JsonObject? KvCache(GgufFile g, string? arch, int sequences, int? contextSize)
    {
        if (arch is null || g.GetInt($"{arch}.block_count") is not { } layers || g.GetInt($"{arch}.embedding_length") is not { } embd) return null;
        long heads = Math.Max(1, g.GetInt($"{arch}.attention.head_count") ?? 1);
        long kvHeads = g.GetInt($"{arch}.attention.head_count_kv") ?? heads;
        long keyWidth = (g.GetInt($"{arch}.attention.key_length") ?? embd / heads) * kvHeads;
        long valueWidth = (g.GetInt($"{arch}.attention.value_length") ?? embd / heads) * kvHeads;
        long modelCtx = g.GetInt($"{arch}.context_length") is > 0 and var c ? c : 2048;
        var kv = KvCacheInfo.Plan(sequences, contextSize ?? (int)Math.Min(modelCtx, 2048), KvCacheInfo.BytesPerCell(layers, keyWidth, valueWidth));
        return new JsonObject
        {
            ["sequences"] = kv.Sequences, ["tokens_per_sequence"] = kv.TokensPerSequence, ["cells"] = kv.Cells,
            ["bytes_per_token"] = kv.BytesPerToken, ["bytes"] = kv.Bytes, ["summary"] = kv.ToString(),
        };
    }

    private static void Print(JsonObject r)
    {
        var t = new Table().Border(TableBorder.Rounded).Title(Markup.Escape(MessageText.Escape(Path.GetFileName((string)r["path"]!))));
        t.AddColumn("property");
        t.AddColumn("value");
        // Strings come from the file: escaped and cut, so a corrupt name cannot flood or garble the terminal.
        void Row(string k, object? v) => t.AddRow(Markup.Escape(k), Markup.Escape(MessageText.Escape(v switch
        {
            null => "-",
            long l => l.ToString("N0", CultureInfo.InvariantCulture),
            _ => v.ToString() ?? "-",
        }, 300)));
        long? L(string k) => r[k] is JsonValue v ? v.TryGetValue<long>(out var x) ? x : v.TryGetValue<int>(out var i) ? i : v.TryGetValue<uint>(out var u) ? u : null : null;
        Row("path", (string?)r["path"]);
        Row("name", (string?)r["name"]);
        Row("kind", (string?)r["kind"]);
        Row("architecture", (string?)r["architecture"]);
        Row("parameters", L("parameters"));
        Row("layers", L("layers"));
        Row("embedding", L("embedding"));
        Row("heads (kv)", r["heads"] is null ? null : $"{L("heads")} ({L("kv_heads")?.ToString() ?? "-"})");
        Row("feed forward", L("feed_forward"));
        Row("context length", L("context_length"));
        if (r["vocabulary"] is JsonObject v)
            Row("vocabulary", $"{(int)v["size"]!} tokens, {(string?)v["kind"] ?? "?"}, sha256 {((string)v["sha256"]!)[..16]}…");
        else Row("vocabulary", null);
        Row("chat template", (bool)r["chat_template"]! ? "yes" : "no");
        Row("file type", (string?)r["file_type"]);
        Row("tensors", $"{L("tensor_count")} ({string.Join(", ", ((JsonObject)r["tensor_types"]!).Select(kv => $"{kv.Key} x{kv.Value}"))})");
        Row("size", $"{L("size_bytes")!.Value / 1024.0 / 1024.0:0.00} MiB");
        if (r["lora_alpha"] is not null) Row("LoRA alpha", (double)r["lora_alpha"]!);
        if (r["kv_cache"] is JsonObject kv) Row("KV cache", (string?)kv["summary"]);
        Row("capabilities", string.Join(", ", ((JsonArray)r["capabilities"]!).Select(c => (string?)c)));
        Row("verdict", (bool)r["valid"]! ? (bool)r["tensors_checked"]! ? "valid (tensors, hyperparameters, metadata and vocabulary checked)"
            : $"valid (metadata and vocabulary checked; tensors of '{r["architecture"]}' are checked by the first-load probe)" : (string?)r["verdict"]);
        AnsiConsole.Write(t);
    }
}
