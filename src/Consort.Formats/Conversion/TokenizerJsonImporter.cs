using System.Text.Json;
using System.Text.RegularExpressions;
using Consort.Formats.Gguf;

namespace Consort.Formats.Conversion;

/// <summary>
/// Builds GGUF tokenizer metadata from a Hugging Face folder (tokenizer.json, tokenizer_config.json), or copies it
/// from a reference GGUF. SentencePiece-style BPE with byte fallback ("▁" word marks) becomes tokenizer.ggml.model
/// "llama" the way llama.cpp's converter does it (scores -1000, control/byte/normal types); byte-level BPE becomes
/// "gpt2" with its merges.
/// </summary>
public static partial class TokenizerJsonImporter
{
    [GeneratedRegex("^<0x[0-9A-Fa-f]{2}>$")]
    private static partial Regex ByteToken();

    /// <summary>Copies every tokenizer.* key of <paramref name="reference"/>.</summary>
    public static void CopyFrom(GgufWriter w, GgufFile reference)
    {
        if (reference.Tokens is null) throw new ModelFileException(reference.Path, "has no tokenizer (tokenizer.ggml.tokens) to copy");
        foreach (var kv in reference.MetadataInOrder)
            if (kv.Key.StartsWith("tokenizer.", StringComparison.Ordinal)) w.SetMetadata(kv.Key, kv.Value);
    }

    /// <summary>Writes tokenizer metadata built from tokenizer.json in <paramref name="folder"/>.</summary>
    public static void Apply(GgufWriter w, string folder, int vocabSize)
    {
        var path = Path.Combine(folder, "tokenizer.json");
        if (!File.Exists(path)) throw new ModelFileException(path, "not found: a GGUF needs a tokenizer (or pass a reference GGUF to copy it from)");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllBytes(path)); }
        catch (JsonException e) { throw new ModelFileException(path, "is not valid JSON: " + e.Message, e); }
        using (doc)
        {
            var root = doc.RootElement;
            if (!root.TryGetProperty("model", out var model) || model.GetProperty("type").GetString() != "BPE")
                throw new ModelFileException(path, "only BPE tokenizers are supported");
            var tokens = new string?[vocabSize];
            foreach (var p in model.GetProperty("vocab").EnumerateObject())
            {
                int id = p.Value.GetInt32();
                if (id < 0 || id >= vocabSize) throw new ModelFileException(path, $"token '{p.Name}' has id {id} outside the model's vocabulary of {vocabSize}");
                tokens[id] = p.Name;
            }
            var special = new HashSet<int>();
            if (root.TryGetProperty("added_tokens", out var added))
                foreach (var a in added.EnumerateArray())
                {
                    int id = a.GetProperty("id").GetInt32();
                    if (id < 0 || id >= vocabSize) continue;
                    tokens[id] = a.GetProperty("content").GetString();
                    if (a.TryGetProperty("special", out var s) && s.GetBoolean()) special.Add(id);
                }
            for (int i = 0; i < vocabSize; i++) tokens[i] ??= $"[PAD{i}]";
            bool byteFallback = model.TryGetProperty("byte_fallback", out var bf) && bf.ValueKind == JsonValueKind.True;
            bool spm = byteFallback || tokens.Any(t => t!.Contains('▁'));
            var types = new int[vocabSize];
            for (int i = 0; i < vocabSize; i++)
                types[i] = special.Contains(i) ? 3 : tokens[i]!.StartsWith("[PAD") ? 5 : spm && ByteToken().IsMatch(tokens[i]!) ? 6 : 1;
            w.SetMetadata("tokenizer.ggml.model", GgufValue.Of(spm ? "llama" : "gpt2"));
            w.SetMetadata("tokenizer.ggml.pre", GgufValue.Of(spm ? "default" : "gpt-2"));
            w.SetMetadata("tokenizer.ggml.tokens", GgufValue.Of(tokens!));
            if (spm) w.SetMetadata("tokenizer.ggml.scores", GgufValue.Of(Enumerable.Repeat(-1000f, vocabSize).ToArray()));
            w.SetMetadata("tokenizer.ggml.token_type", GgufValue.Of(types));
            if (!spm && model.TryGetProperty("merges", out var merges))
                w.SetMetadata("tokenizer.ggml.merges", GgufValue.Of(merges.EnumerateArray()
                    .Select(m => m.ValueKind == JsonValueKind.Array ? m[0].GetString() + " " + m[1].GetString() : m.GetString()!).ToArray()));

            var tokenIds = new Dictionary<string, int>();
            for (int i = 0; i < vocabSize; i++) tokenIds.TryAdd(tokens[i]!, i);
            ApplySpecialTokens(w, folder, tokenIds);
        }
    }

    private static void ApplySpecialTokens(GgufWriter w, string folder, Dictionary<string, int> ids)
    {
        var cfgPath = Path.Combine(folder, "tokenizer_config.json");
        if (!File.Exists(cfgPath)) return;
        using var cfg = JsonDocument.Parse(File.ReadAllBytes(cfgPath));
        var c = cfg.RootElement;
        void Id(string jsonKey, string ggufKey)
        {
            if (!c.TryGetProperty(jsonKey, out var v)) return;
            string? text = v.ValueKind == JsonValueKind.String ? v.GetString() : v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out var ct) ? ct.GetString() : null;
            if (text is not null && ids.TryGetValue(text, out int id)) w.SetMetadata(ggufKey, GgufValue.Of((uint)id));
        }
        Id("bos_token", "tokenizer.ggml.bos_token_id");
        Id("eos_token", "tokenizer.ggml.eos_token_id");
        Id("unk_token", "tokenizer.ggml.unknown_token_id");
        Id("pad_token", "tokenizer.ggml.padding_token_id");
        if (c.TryGetProperty("add_bos_token", out var ab) && ab.ValueKind is JsonValueKind.True or JsonValueKind.False)
            w.SetMetadata("tokenizer.ggml.add_bos_token", GgufValue.Of(ab.GetBoolean()));
        if (c.TryGetProperty("add_eos_token", out var ae) && ae.ValueKind is JsonValueKind.True or JsonValueKind.False)
            w.SetMetadata("tokenizer.ggml.add_eos_token", GgufValue.Of(ae.GetBoolean()));
    }
}
