using System.Text.Json;
using System.Text.Json.Nodes;
using Consort.Formats;
using Consort.Formats.Gguf;
using Consort.Formats.Safetensors;

namespace Consort.Weights.Tokenizer;

/// <summary>One token of a vocabulary: its text, SentencePiece score and llama.cpp token type (1 normal, 3 control, 4 user-defined, 5 unused, 6 byte).</summary>
/// <param name="Text">Token text as the tokenizer stores it (e.g. "▁the", "&lt;0x0A&gt;").</param>
/// <param name="Score">SentencePiece merge score (0 where the tokenizer has none).</param>
/// <param name="Type">llama.cpp token type.</param>
/// <param name="Special">A Hugging Face "special" added token (kept as such when added to another tokenizer).</param>
public sealed record TokenEntry(string Text, float Score, int Type, bool Special = false);

/// <summary>
/// A model's vocabulary as the merge sees it: tokens in id order (only those with an embedding row), the tokenizer's
/// kind, BPE merges and the chat template. Read from a GGUF's tokenizer metadata or a Hugging Face folder's
/// tokenizer.json (model vocabulary plus added tokens).
/// </summary>
public sealed class Vocabulary
{
    private readonly Dictionary<string, int> _ids = new(StringComparer.Ordinal);

    /// <summary>Builds a vocabulary (the first of equal texts keeps its id in lookups).</summary>
    public Vocabulary(string kind, IReadOnlyList<TokenEntry> tokens, IReadOnlyList<string>? merges, string? chatTemplate, string path)
    {
        Kind = kind; Tokens = tokens; Merges = merges; ChatTemplate = chatTemplate; Path = path;
        for (int i = 0; i < tokens.Count; i++) _ids.TryAdd(tokens[i].Text, i);
    }

    /// <summary>"gguf:llama", "gguf:gpt2", "hf:BPE", ...: vocabularies of different kinds cannot be united.</summary>
    public string Kind { get; }
    /// <summary>Tokens in id order.</summary>
    public IReadOnlyList<TokenEntry> Tokens { get; }
    /// <summary>BPE merges ("a b"), or null.</summary>
    public IReadOnlyList<string>? Merges { get; }
    /// <summary>The chat template (GGUF tokenizer.chat_template or tokenizer_config.json chat_template), or null.</summary>
    public string? ChatTemplate { get; }
    /// <summary>The model file or folder.</summary>
    public string Path { get; }
    /// <summary>Number of tokens.</summary>
    public int Count => Tokens.Count;
    /// <summary>Id of a token text, or -1.</summary>
    public int IdOf(string text) => _ids.TryGetValue(text, out var i) ? i : -1;

    /// <summary>Names of the tensors whose rows are tokens (embeddings and output head), in either naming.</summary>
    public static bool IsVocabularyTensor(string name) =>
        name is "token_embd.weight" or "output.weight" or "model.embed_tokens.weight" or "lm_head.weight";

    /// <summary>The vocabulary of an opened model; <paramref name="rows"/> (the embedding's rows) bounds it, as mergekit strips tokens past vocab_size.</summary>
    public static Vocabulary Read(ITensorSource source, int rows)
    {
        if (source is GgufTensorSource g) return FromGguf(g.File, rows);
        if (source is SafetensorsModel st) return FromFolder(st.Folder, rows);
        throw new ModelFileException(source.Path, "has no tokenizer Consort can read");
    }

    /// <summary>The vocabulary of a model given by path (GGUF file or Hugging Face folder), for tokenizer sources that are not merged.</summary>
    public static Vocabulary Read(string path)
    {
        using var s = TensorSources.Open(path);
        var embed = s.Tensors.FirstOrDefault(t => IsVocabularyTensor(t.Name));
        return Read(s, embed is null ? int.MaxValue : (int)embed.Shape[0]);
    }

    private static Vocabulary FromGguf(GgufFile f, int rows)
    {
        var tokens = f.Tokens ?? throw new ModelFileException(f.Path, "has no tokenizer (tokenizer.ggml.tokens)");
        var scores = f.Get("tokenizer.ggml.scores")?.Value as float[];
        var types = f.Get("tokenizer.ggml.token_type")?.Value as int[];
        int n = Math.Min(tokens.Length, rows);
        var list = Enumerable.Range(0, n).Select(i => new TokenEntry(tokens[i], scores is not null && i < scores.Length ? scores[i] : 0, types is not null && i < types.Length ? types[i] : 1, types?[i] == 3)).ToList();
        return new Vocabulary("gguf:" + (f.GetString("tokenizer.ggml.model") ?? "?"), list, f.Get("tokenizer.ggml.merges")?.Value as string[], f.GetString("tokenizer.chat_template"), f.Path);
    }

    /// <summary>tokenizer.json of a Hugging Face folder, parsed (null when absent).</summary>
    public static JsonObject? ReadTokenizerJson(string folder)
    {
        var path = System.IO.Path.Combine(folder, "tokenizer.json");
        if (!File.Exists(path)) return null;
        try { return JsonNode.Parse(File.ReadAllBytes(path)) as JsonObject ?? throw new ModelFileException(path, "is not a JSON object"); }
        catch (JsonException e) { throw new ModelFileException(path, "is not valid JSON: " + e.Message, e); }
    }

    private static Vocabulary FromFolder(string folder, int rows)
    {
        var json = ReadTokenizerJson(folder) ?? throw new ModelFileException(System.IO.Path.Combine(folder, "tokenizer.json"), "not found: a tokenizer merge needs each model's tokenizer.json");
        string where = System.IO.Path.Combine(folder, "tokenizer.json");
        if (json["model"] is not JsonObject model || model["vocab"] is not JsonObject vocab)
            throw new ModelFileException(where, "has no model.vocab (only BPE-style tokenizer.json files with a vocab map are supported)");
        var byId = new SortedDictionary<int, TokenEntry>();
        foreach (var (text, idNode) in vocab)
            if (idNode?.GetValueKind() == JsonValueKind.Number && idNode.GetValue<int>() is int id && id >= 0 && id < rows) byId[id] = new TokenEntry(text, 0, 1);
        if (json["added_tokens"] is JsonArray added)
            foreach (var a in added.OfType<JsonObject>())
            {
                if (a["id"]?.GetValue<int>() is not int id || id < 0 || id >= rows || a["content"]?.GetValue<string>() is not string content) continue;
                bool special = a["special"]?.GetValue<bool>() == true;
                byId[id] = new TokenEntry(content, 0, special ? 3 : 4, special);
            }
        var tokens = new List<TokenEntry>();
        foreach (var (id, t) in byId)
        {
            if (id != tokens.Count) throw new ModelFileException(where, $"token ids are not contiguous: no token has id {tokens.Count}");
            tokens.Add(t);
        }
        var merges = model["merges"] is JsonArray m
            ? m.Select(x => x is JsonArray pair ? $"{pair[0]} {pair[1]}" : x?.GetValue<string>() ?? "").ToList() : null;
        string? template = null;
        var cfgPath = System.IO.Path.Combine(folder, "tokenizer_config.json");
        if (File.Exists(cfgPath))
            try { template = (JsonNode.Parse(File.ReadAllBytes(cfgPath)) as JsonObject)?["chat_template"] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null; }
            catch (JsonException e) { throw new ModelFileException(cfgPath, "is not valid JSON: " + e.Message, e); }
        return new Vocabulary("hf:" + (model["type"]?.GetValue<string>() ?? "?"), tokens, merges, template, folder);
    }
}
