using System.Text.Json.Nodes;
using Consort.Formats;
using Consort.Formats.Gguf;
using Consort.Formats.Safetensors;
using Consort.Testing;
using Consort.Weights.Config;
using Consort.Weights.Engine;

namespace Consort.Weights.Tests;

/// <summary>
/// Tokenizer surgery (mergekit's tokenizer / tokenizer_source): vocabularies united or chosen, embedding and head rows
/// remapped, per-token overrides, padding, chat templates; checked on the real shared models through llama.cpp.
/// stories260k and tinystories-656k differ in every width, so the second model of the union is stories260k carried
/// over to tinystories-656k's 2048-token vocabulary (each new token's rows the mean of the rows of the stories260k
/// pieces that spell it): a model of the same shapes with the other vocabulary, as a fine-tune with an extended or
/// replaced tokenizer would be.
/// </summary>
public class TokenizerMergeTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly string _transplant;

    public TokenizerMergeTests() { _transplant = Transplant(_dir.File("260k-656kvocab.gguf")); }

    public void Dispose() => _dir.Dispose();

    /// <summary>stories260K's weights with tinystories-656k's tokenizer: token rows from a greedy spelling of each token in stories260K's pieces.</summary>
    private static string Transplant(string path)
    {
        using var small = GgufFile.Open(TestPaths.Stories260K);
        using var other = GgufFile.Open(TestPaths.TinyStories656K);
        var pieces = small.Tokens!;
        var ids = new Dictionary<string, int>();
        for (int i = 0; i < pieces.Length; i++) ids.TryAdd(pieces[i], i);
        var target = other.Tokens!;
        int width = (int)small.FindTensor("token_embd.weight")!.Dimensions[0];
        float[] Rows(string tensor)
        {
            var src = small.ReadFloat32(small.FindTensor(tensor)!);
            var dst = new float[target.Length * width];
            for (int t = 0; t < target.Length; t++)
            {
                var spelled = Spell(target[t], ids);
                foreach (var id in spelled)
                    for (int j = 0; j < width; j++) dst[t * width + j] += src[id * width + j] / spelled.Count;
            }
            return dst;
        }
        using var w = new GgufWriter(path);
        foreach (var kv in small.MetadataInOrder) if (!kv.Key.StartsWith("tokenizer.")) w.SetMetadata(kv.Key, kv.Value);
        foreach (var kv in other.MetadataInOrder) if (kv.Key.StartsWith("tokenizer.")) w.SetMetadata(kv.Key, kv.Value);
        foreach (var t in small.Tensors)
            w.AddTensor(t.Name, t.Name is "token_embd.weight" or "output.weight" ? [width, target.Length] : t.Dimensions, GgmlType.F32);
        foreach (var t in small.Tensors)
            w.WriteTensor(t.Name, t.Name is "token_embd.weight" or "output.weight" ? Rows(t.Name) : small.ReadFloat32(t));
        w.Commit();
        return path;
    }

    // Longest pieces first; characters without a piece as their UTF-8 byte tokens; control tokens as <unk>.
    private static List<int> Spell(string token, Dictionary<string, int> ids)
    {
        var result = new List<int>();
        if (token.StartsWith("<|") || token == "<unk>") return [0];
        for (int at = 0; at < token.Length;)
        {
            int len = token.Length - at;
            for (; len > 0; len--) if (ids.TryGetValue(token.Substring(at, len), out var id)) { result.Add(id); break; }
            if (len > 0) { at += len; continue; }
            foreach (var b in System.Text.Encoding.UTF8.GetBytes(token.Substring(at, 1))) result.Add(ids[$"<0x{b:X2}>"]);
            at++;
        }
        return result.Count > 0 ? result : [0];
    }

    private static float[] Row(GgufFile f, string tensor, int row)
    {
        var t = f.FindTensor(tensor)!;
        int width = (int)t.Dimensions[0];
        var all = f.ReadFloat32(t);
        return all.AsSpan(row * width, width).ToArray();
    }

    private string Yaml(string name, string body)
    {
        var path = _dir.File(name + ".yml");
        File.WriteAllText(path, body);
        return path;
    }

    [Fact]
    public void UnionOfStories260kAndTinyStories656kVocabulariesKeepsKnownTokensAndRunsInLlamaCpp()
    {
        var yml = Yaml("union", $$"""
            merge_method: linear
            base_model: {{TestPaths.Stories260K}}
            models:
              - model: {{TestPaths.Stories260K}}
                parameters: {weight: 0.5}
              - model: {{_transplant}}
                parameters: {weight: 0.5}
            tokenizer_source: union
            """);
        var output = _dir.File("union.gguf");
        MergeEngine.Run(MergeConfig.Load(yml), output);

        using var small = GgufFile.Open(TestPaths.Stories260K);
        using var moved = GgufFile.Open(_transplant);
        using var merged = GgufFile.Open(output);
        var a = small.Tokens!; var b = moved.Tokens!; var u = merged.Tokens!;
        var expected = a.Concat(b.Where(t => !a.Contains(t))).ToArray();
        Assert.Equal(expected, u);
        Assert.True(u.Length > 2000 && u.Length < 512 + 2048, $"{u.Length} tokens");
        Assert.Equal(u.Length, (int)merged.FindTensor("token_embd.weight")!.Dimensions[1]);
        // Known tokens keep their ids and rows: stories260k's own tokens (not in the other vocabulary) are its rows
        // exactly, the other vocabulary's new tokens are the transplant's rows, shared tokens the weighted mean.
        var bIds = b.Select((t, i) => (t, i)).GroupBy(x => x.t).ToDictionary(g => g.Key, g => g.First().i);
        int onlyA = 0, shared = 0;
        foreach (var tensor in new[] { "token_embd.weight", "output.weight" })
            for (int id = 0; id < u.Length; id++)
            {
                var row = Row(merged, tensor, id);
                int ia = Array.IndexOf(a, u[id]);
                bool inB = bIds.TryGetValue(u[id], out int ib);
                if (ia >= 0 && !inB) { Assert.Equal(Row(small, tensor, ia), row); onlyA++; }
                else if (ia < 0) Assert.Equal(Row(moved, tensor, ib), row);
                else
                {
                    var ra = Row(small, tensor, ia); var rb = Row(moved, tensor, ib);
                    MergeTestModels.Close(ra.Zip(rb, (x, y) => 0.5f * x + 0.5f * y).ToArray(), row, 1e-6f);
                    shared++;
                }
            }
        Assert.True(onlyA > 10 && shared > 10, $"{onlyA} own and {shared} shared rows");
        Assert.Equal(small.GetInt("tokenizer.ggml.bos_token_id"), merged.GetInt("tokenizer.ggml.bos_token_id"));

        // llama.cpp loads and runs it; text of stories260k's own pieces tokenizes to the same ids.
        var (tokens, logits) = LlamaRunner.Logits(output, "Once upon a time");
        Assert.All(logits, l => { Assert.Equal(u.Length, l.Length); Assert.All(l, x => Assert.True(float.IsFinite(x))); });
        Assert.Equal(1, tokens[0]); // BOS kept its id
        Assert.All(tokens, t => Assert.InRange(t, 0, u.Length - 1));
    }

    [Fact]
    public void BaseAndModelSourcesOverridesAndPadding()
    {
        // source: base keeps stories260k's vocabulary and rows (the other model's rows are remapped into it).
        var baseYml = Yaml("base", $$"""
            merge_method: linear
            base_model: {{TestPaths.Stories260K}}
            models:
              - model: {{TestPaths.Stories260K}}
                parameters: {weight: 1.0}
              - model: {{_transplant}}
                parameters: {weight: 0.0}
            tokenizer: {source: base}
            """);
        MergeEngine.Run(MergeConfig.Load(baseYml), _dir.File("base.gguf"));
        using (var small = GgufFile.Open(TestPaths.Stories260K))
        using (var m = GgufFile.Open(_dir.File("base.gguf")))
        {
            Assert.Equal(small.Tokens, m.Tokens);
            Assert.Equal(small.ReadFloat32(small.FindTensor("token_embd.weight")!), m.ReadFloat32(m.FindTensor("token_embd.weight")!));
        }

        // source: the transplant, with overrides and padding to a multiple of 64.
        var yml = Yaml("model", $$"""
            merge_method: linear
            base_model: {{TestPaths.Stories260K}}
            models:
              - model: {{TestPaths.Stories260K}}
                parameters: {weight: 0.5}
              - model: {{_transplant}}
                parameters: {weight: 0.5}
            tokenizer:
              source: {{_transplant}}
              pad_to_multiple_of: 96
              tokens:
                "<|start_story|>":
                  source: {kind: model_token, model: {{TestPaths.Stories260K}}, token: "<s>"}
                  force: true
                "the▁":
                  source: {kind: zero}
                  force: true
                "<|im_start|>":
                  source: {{_transplant}}
            """);
        var e = Assert.Throws<ConfigException>(() => MergeEngine.Run(MergeConfig.Load(yml), _dir.File("bad.gguf")));
        Assert.Contains("<|im_start|>", e.Message); // the transplant has no such token to give
        File.WriteAllText(yml, File.ReadAllText(yml).Replace("\"<|im_start|>\":\n      source: " + _transplant, "\"<|im_start|>\":\n      source: {kind: zero}"));
        MergeEngine.Run(MergeConfig.Load(yml), _dir.File("model.gguf"));
        using var small2 = GgufFile.Open(TestPaths.Stories260K);
        using var moved = GgufFile.Open(_transplant);
        using var merged = GgufFile.Open(_dir.File("model.gguf"));
        var tokens = merged.Tokens!;
        Assert.Equal(moved.Tokens!, tokens.Take(2048));
        Assert.Equal("<|im_start|>", tokens[2048]);               // added by the overrides
        Assert.Equal(2112, tokens.Length);                        // 2049 padded to a multiple of 96
        Assert.Equal(5, ((int[])merged.Get("tokenizer.ggml.token_type")!.Value)[2100]); // padding: unused
        Assert.Equal(moved.GetInt("tokenizer.ggml.bos_token_id"), merged.GetInt("tokenizer.ggml.bos_token_id"));
        int start = Array.IndexOf(tokens, "<|start_story|>"), lily = Array.IndexOf(tokens, "the▁");
        Assert.Equal(Row(small2, "token_embd.weight", 1), Row(merged, "token_embd.weight", start)); // <s>'s row, for both models
        Assert.All(Row(merged, "token_embd.weight", lily), x => Assert.Equal(0f, x));
        // Padding rows: the mean of the real rows.
        var all = merged.ReadFloat32(merged.FindTensor("token_embd.weight")!);
        int width = 64;
        for (int j = 0; j < width; j++)
        {
            double mean = 0;
            for (int r = 0; r < 2049; r++) mean += all[r * width + j];
            Assert.Equal(mean / 2049, all[2100 * width + j], 4);
        }
        var (_, logits) = LlamaRunner.Logits(_dir.File("model.gguf"), "Once upon a time");
        Assert.Equal(2112, logits[0].Length);
    }

    [Fact]
    public void SafetensorsUnionAddsTokensAndConvertsToAGgufLlamaCppLoads()
    {
        // A derived Hugging Face model: tinystories-656k (tied: it stores lm_head only) with three added tokens and their rows.
        var hf = TestPaths.Model("tinystories-656k-hf");
        var derived = _dir.File("656k-plus");
        Directory.CreateDirectory(derived);
        foreach (var f in Directory.GetFiles(hf)) if (!f.EndsWith(".safetensors")) File.Copy(f, Path.Combine(derived, Path.GetFileName(f)));
        var tok = JsonNode.Parse(File.ReadAllText(Path.Combine(hf, "tokenizer.json")))!.AsObject();
        string[] extra = ["<|im_start|>", "<|im_end|>", "▁zorblax"];
        for (int i = 0; i < extra.Length; i++)
            tok["added_tokens"]!.AsArray().Add(new JsonObject { ["id"] = 2048 + i, ["content"] = extra[i], ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = i == 2, ["special"] = i < 2 });
        File.WriteAllText(Path.Combine(derived, "tokenizer.json"), tok.ToJsonString());
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(hf, "config.json")))!.AsObject();
        cfg["vocab_size"] = 2051;
        File.WriteAllText(Path.Combine(derived, "config.json"), cfg.ToJsonString());
        using (var src = TensorSources.Open(hf))
        using (var w = new SafetensorsWriter(Path.Combine(derived, "model.safetensors")))
        {
            foreach (var t in src.Tensors) w.AddTensor(t.Name, t.Name == "lm_head.weight" ? [2051, t.Shape[1]] : t.Shape, GgmlType.F32);
            foreach (var t in src.Tensors)
            {
                var v = src.ReadFloat32(t);
                if (t.Name == "lm_head.weight") v = [.. v.Select(x => x * 1.5f), .. Enumerable.Range(0, 3 * (int)t.Shape[1]).Select(i => (float)Math.Sin(i))];
                w.WriteTensor(t.Name, v);
            }
            w.Commit();
        }
        var c = new MergeConfig
        {
            MergeMethod = "linear", BaseModel = hf,
            Models = [new MergeModel(hf, new Dictionary<string, MergeParameter> { ["weight"] = MergeParameter.Scalar(1.0) }),
                      new MergeModel(derived, new Dictionary<string, MergeParameter> { ["weight"] = MergeParameter.Scalar(1.0) })],
            Tokenizer = new TokenizerSettings("union", new Dictionary<string, TokenEmbeddingSource>(), null),
            ChatTemplate = "chatml",
        };
        MergeEngine.Run(c, _dir.File("out"));
        var outTok = JsonNode.Parse(File.ReadAllText(_dir.File("out/tokenizer.json")))!.AsObject();
        var added = outTok["added_tokens"]!.AsArray().Select(x => (x!["id"]!.GetValue<int>(), x["content"]!.GetValue<string>(), x["special"]!.GetValue<bool>())).ToList();
        Assert.Contains((2048, "<|im_start|>", true), added);
        Assert.Contains((2050, "▁zorblax", false), added);
        Assert.Equal(2051, JsonNode.Parse(File.ReadAllText(_dir.File("out/config.json")))!["vocab_size"]!.GetValue<int>());
        Assert.StartsWith("{% for message in messages %}", JsonNode.Parse(File.ReadAllText(_dir.File("out/tokenizer_config.json")))!["chat_template"]!.GetValue<string>());
        using (var m = TensorSources.Open(_dir.File("out")))
        using (var a = TensorSources.Open(hf))
        using (var d = TensorSources.Open(derived))
        {
            var e = m.ReadFloat32("lm_head.weight"); var ea = a.ReadFloat32("lm_head.weight"); var ed = d.ReadFloat32("lm_head.weight");
            Assert.Equal(2051 * 128, e.Length);
            MergeTestModels.Close(ea.Zip(ed, (x, y) => (x + y) / 2).ToArray(), e[..(2048 * 128)], 1e-6f); // shared: the mean
            Assert.Equal(ed[(2048 * 128)..], e[(2048 * 128)..]);                                          // new: the donor's rows
        }
        // The same merge written straight to GGUF (safetensors in, GGUF out) and the folder converted: llama.cpp runs both.
        MergeEngine.Run(c, _dir.File("direct.gguf"));
        Formats.Conversion.ModelConverter.Convert(_dir.File("out"), _dir.File("converted.gguf"));
        foreach (var g in new[] { "direct.gguf", "converted.gguf" })
        {
            using (var f = GgufFile.Open(_dir.File(g)))
            {
                Assert.Equal(2051, f.Tokens!.Length);
                Assert.Equal("<|im_start|>", f.Tokens[2048]);
            }
            var (tokens, logits) = LlamaRunner.Logits(_dir.File(g), "Once upon a time");
            Assert.Equal(2051, logits[0].Length);
            Assert.Equal(LlamaRunner.Logits(TestPaths.TinyStories656K, "Once upon a time").Tokens, tokens);
        }
        Assert.Equal(LlamaRunner.Logits(_dir.File("converted.gguf")).Logits.Select(l => LlamaRunner.ArgMax(l)), LlamaRunner.Logits(_dir.File("direct.gguf")).Logits.Select(l => LlamaRunner.ArgMax(l)));
    }

    [Fact]
    public void EmbedSlerpInterpolatesSharedTokenRows()
    {
        var yml = Yaml("slerp", $$"""
            merge_method: slerp
            base_model: {{TestPaths.Stories260K}}
            models:
              - model: {{_transplant}}
            parameters:
              t: 0.3
              embed_slerp: true
            tokenizer_source: union
            """);
        MergeEngine.Run(MergeConfig.Load(yml), _dir.File("es.gguf"));
        using var small = GgufFile.Open(TestPaths.Stories260K);
        using var moved = GgufFile.Open(_transplant);
        using var merged = GgufFile.Open(_dir.File("es.gguf"));
        var u = merged.Tokens!;
        int newToken = Array.FindIndex(u, t => Array.IndexOf(small.Tokens!, t) < 0);
        Assert.Equal(Row(moved, "token_embd.weight", Array.IndexOf(moved.Tokens!, u[newToken])), Row(merged, "token_embd.weight", newToken));
        int onlySmall = Array.FindIndex(u, t => Array.IndexOf(moved.Tokens!, t) < 0);
        Assert.Equal(Row(small, "token_embd.weight", onlySmall), Row(merged, "token_embd.weight", onlySmall));
        Assert.Equal(u.Length, LlamaRunner.Logits(_dir.File("es.gguf"), "Once upon a time").Logits[0].Length);
        // embed_slerp needs exactly two models.
        var noBase = Yaml("slerp-nobase", $"merge_method: linear\nmodels:\n  - model: {_transplant}\n    parameters: {{weight: 1}}\n  - model: {TestPaths.Stories260K}\n    parameters: {{weight: 1}}\nparameters: {{embed_slerp: true}}\ntokenizer_source: union\n");
        Assert.Contains("embed_slerp", Assert.Throws<ConfigException>(() => MergeEngine.Validate(MergeConfig.Load(noBase))).Message);
    }

    [Fact]
    public void ChatTemplateAutoBuiltInAndInvalid()
    {
        var body = $$"""
            merge_method: linear
            models:
              - model: {{TestPaths.Stories260K}}
                parameters: {weight: 1.0}
            """;
        MergeEngine.Run(MergeConfig.Load(Yaml("llama3", body + "\nchat_template: llama3\n")), _dir.File("l3.gguf"));
        using (var f = GgufFile.Open(_dir.File("l3.gguf"))) Assert.Contains("<|start_header_id|>", f.GetString("tokenizer.chat_template"));
        MergeEngine.Run(MergeConfig.Load(Yaml("auto", body + "\nchat_template: auto\n")), _dir.File("auto.gguf"));
        using (var f = GgufFile.Open(_dir.File("auto.gguf"))) Assert.Null(f.GetString("tokenizer.chat_template")); // no input has one
        var e = Assert.Throws<ConfigException>(() => MergeEngine.Validate(MergeConfig.Load(Yaml("bad", body + "\nchat_template: vicuna\n"))));
        Assert.Contains("chat_template 'vicuna'", e.Message);
    }

    [Fact]
    public void UnionIsRefusedForDifferentTokenizerKindsAndWithSlices()
    {
        var c = MergeConfig.Load(Yaml("kinds", $$"""
            merge_method: linear
            models:
              - model: {{TestPaths.Stories260K}}
                parameters: {weight: 1.0}
              - model: {{Path.Combine(TestPaths.RepoRoot, "zoo", "base.gguf")}}
                parameters: {weight: 1.0}
            tokenizer_source: union
            """));
        var e = Assert.Throws<ConfigException>(() => MergeEngine.Run(c, _dir.File("k.gguf")));
        Assert.Contains("different kinds", e.Message);
        Assert.Contains("gguf:gpt2", e.Message);
        var both = Assert.Throws<ConfigException>(() => MergeConfig.Load(Yaml("both", $"merge_method: linear\nmodels: [{TestPaths.Stories260K}]\ntokenizer_source: base\ntokenizer: {{source: base}}\n")));
        Assert.Contains("either 'tokenizer_source' or 'tokenizer'", both.Message);
    }
}
