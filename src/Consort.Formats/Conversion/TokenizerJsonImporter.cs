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
        using var doc = SafeJson.ParseDocumentFile(path, Limits.MaxTokenizerBytes, "a tokenizer.json", SafeJson.Kind.Model);
        try
        {
            Apply(w, folder, vocabSize, path, doc.RootElement);
        }
        catch (Exception e) when (e is InvalidOperationException or KeyNotFoundException or FormatException or IndexOutOfRangeException)
        {
            // GetProperty / GetInt32 / GetString on a value of another shape: the file is not a tokenizer.json we can read.
            throw new ModelFileException(path, $"is not a Hugging Face tokenizer.json Consort can read ({MessageText.Escape(e.Message)})", e);
        }
    }

    private static void Apply(GgufWriter w, string folder, int vocabSize, string path, JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object
            || !model.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String || type.GetString() != "BPE")
            throw new ModelFileException(path, "only BPE tokenizers are supported");
        if (!model.TryGetProperty("vocab", out var vocab) || vocab.ValueKind != JsonValueKind.Object)
            throw new ModelFileException(path, "model.vocab must be an object of token: id");
        var tokens = new string?[vocabSize];
        int listed = 0;
        foreach (var p in vocab.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int id))
                throw new ModelFileException(path, $"token {MessageText.Quote(p.Name)} has id {MessageText.Escape(p.Value.GetRawText(), 40)}, not a whole number");
            if (id < 0 || id >= vocabSize) throw new ModelFileException(path, $"token {MessageText.Quote(p.Name)} has id {id} outside the model's vocabulary of {vocabSize}");
            tokens[id] = p.Name;
            listed++;
        }
        // Placeholders fill gaps, but a vocabulary that is all placeholders cannot encode any text (llama.cpp aborts).
        if (listed == 0) throw new ModelFileException(path, "the vocabulary (model.vocab) is empty");
        var special = new HashSet<int>();
        if (root.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
            foreach (var a in added.EnumerateArray())
            {
                int id = a.GetProperty("id").GetInt32();
                if (id < 0 || id >= vocabSize) continue;
                tokens[id] = a.GetProperty("content").GetString();
                if (a.TryGetProperty("special", out var s) && s.ValueKind == JsonValueKind.True) special.Add(id);
            }
        for (int i = 0; i < vocabSize; i++) tokens[i] ??= $"[PAD{i}]";
        bool byteFallback = model.TryGetProperty("byte_fallback", out var bf) && bf.ValueKind == JsonValueKind.True;
        bool spm = byteFallback || tokens.Any(t => t!.Contains('▁'));
        var types = new int[vocabSize];
        for (int i = 0; i < vocabSize; i++)
            types[i] = special.Contains(i) ? 3 : tokens[i]!.StartsWith("[PAD") ? 5 : spm && ByteToken().IsMatch(tokens[i]!) ? 6 : 1;
        w.SetMetadata(GgufKeys.Tokenizer.Model, GgufValue.Of(spm ? "llama" : "gpt2"));
        w.SetMetadata(GgufKeys.Tokenizer.Pre, GgufValue.Of(spm ? "default" : "gpt-2"));
        w.SetMetadata(GgufKeys.Tokenizer.Tokens, GgufValue.Of(tokens!));
        if (spm) w.SetMetadata(GgufKeys.Tokenizer.Scores, GgufValue.Of(Enumerable.Repeat(-1000f, vocabSize).ToArray()));
        w.SetMetadata(GgufKeys.Tokenizer.TokenType, GgufValue.Of(types));
        if (!spm)
        {
            var merges = model.TryGetProperty("merges", out var m) && m.ValueKind == JsonValueKind.Array
                ? m.EnumerateArray().Select(x => x.ValueKind == JsonValueKind.Array ? x[0].GetString() + " " + x[1].GetString() : x.GetString()!).ToArray()
                : [];
            w.SetMetadata(GgufKeys.Tokenizer.Merges, GgufValue.Of(merges));
        }

        var tokenIds = new Dictionary<string, int>();
        for (int i = 0; i < vocabSize; i++) tokenIds.TryAdd(tokens[i]!, i);
        ApplySpecialTokens(w, folder, tokenIds);
    }

    private static void ApplySpecialTokens(GgufWriter w, string folder, Dictionary<string, int> ids)
    {
        var cfgPath = Path.Combine(folder, "tokenizer_config.json");
        if (!File.Exists(cfgPath)) return;
        using var cfg = SafeJson.ParseDocumentFile(cfgPath, Limits.MaxConfigBytes, "a tokenizer_config.json", SafeJson.Kind.Model);
        var c = cfg.RootElement;
        if (c.ValueKind != JsonValueKind.Object) throw new ModelFileException(cfgPath, "must be a JSON object");
        void Id(string jsonKey, string ggufKey)
        {
            if (!c.TryGetProperty(jsonKey, out var v)) return;
            string? text = v.ValueKind == JsonValueKind.String ? v.GetString()
                : v.ValueKind == JsonValueKind.Object && v.TryGetProperty("content", out var ct) && ct.ValueKind == JsonValueKind.String ? ct.GetString() : null;
            if (text is not null && ids.TryGetValue(text, out int id)) w.SetMetadata(ggufKey, GgufValue.Of((uint)id));
        }
        Id("bos_token", GgufKeys.Tokenizer.BosId);
        Id("eos_token", GgufKeys.Tokenizer.EosId);
        Id("unk_token", GgufKeys.Tokenizer.UnknownId);
        Id("pad_token", GgufKeys.Tokenizer.PaddingId);
        if (c.TryGetProperty("add_bos_token", out var ab) && ab.ValueKind is JsonValueKind.True or JsonValueKind.False)
            w.SetMetadata(GgufKeys.Tokenizer.AddBos, GgufValue.Of(ab.GetBoolean()));
        if (c.TryGetProperty("add_eos_token", out var ae) && ae.ValueKind is JsonValueKind.True or JsonValueKind.False)
            w.SetMetadata(GgufKeys.Tokenizer.AddEos, GgufValue.Of(ae.GetBoolean()));
    }
}
