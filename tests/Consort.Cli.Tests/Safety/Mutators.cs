using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Consort.Formats.Gguf;

namespace Consort.Cli.Tests.Safety;

/// <summary>Seeded mutations of the inputs Consort reads: JSON documents, YAML text, GGUF files (structured and raw bytes).</summary>
internal sealed partial class Mutators(Random random)
{
    private readonly Random _r = random;

    private T Pick<T>(IReadOnlyList<T> items) => items[_r.Next(items.Count)];

    private static readonly JsonNode[] ExtremeNumbers =
    [
        0, -1, 1, 2, 3, 65, 100_000, 1_000_000_000, -1_000_000_000, int.MaxValue, long.MaxValue, 0.5, -0.5, 1e-30, 1e26, 1e308, -1e308, 127.5,
    ];

    private static readonly string[] References =
    [
        "zoo:nothing", "zoo:arith", "/", "/etc/passwd", "..", ".", "hf:a/b/c.gguf", "missing.gguf", "x.json", "single_model", "majority_vote",
        "logit_fusion", "test", "dev", "", " ", "{input}{input}", "\u0000", "日本語",
    ];

    private JsonNode Replacement(JsonNode? old)
    {
        switch (_r.Next(9))
        {
            case 0: case 1: return ExtremeNumbers[_r.Next(ExtremeNumbers.Length)].DeepClone();
            case 2: return JsonValue.Create(Pick(References))!;
            case 3: return JsonValue.Create(new string('x', 1 << _r.Next(8, 21)))!;
            case 4: return JsonValue.Create("a\u0000b\nc\u001b[31m\r" + (old?.ToJsonString() ?? ""))!;
            case 5:
            {
                JsonNode n = JsonValue.Create(1)!;
                for (int i = 0, depth = _r.Next(2) == 0 ? 30 : 200; i < depth; i++) n = new JsonArray(n);
                return n;
            }
            case 6: return _r.Next(3) switch { 0 => new JsonArray(), 1 => new JsonObject(), _ => JsonValue.Create(true)! };
            case 7: return old is JsonValue v && v.GetValueKind() == JsonValueKind.Number ? JsonValue.Create(-double.Parse(v.ToJsonString(), System.Globalization.CultureInfo.InvariantCulture))! : JsonValue.Create(-7)!;
            default: return new JsonObject { ["unexpected"] = 1 };
        }
    }

    private static List<(JsonNode Node, JsonNode? Parent, string? Key, int Index)> Nodes(JsonNode root)
    {
        var all = new List<(JsonNode, JsonNode?, string?, int)>();
        var stack = new Stack<(JsonNode, JsonNode?, string?, int)>();
        stack.Push((root, null, null, -1));
        while (stack.Count > 0)
        {
            var e = stack.Pop();
            all.Add(e);
            if (all.Count > 20_000) break;
            switch (e.Item1)
            {
                case JsonObject o: foreach (var (k, v) in o) if (v is not null) stack.Push((v, o, k, -1)); break;
                case JsonArray a: for (int i = 0; i < a.Count; i++) if (a[i] is { } v) stack.Push((v, a, null, i)); break;
            }
        }
        return all;
    }

    /// <summary>One to three structural mutations of a JSON document (text level for duplicate keys and truncation).</summary>
    public string Json(string text)
    {
        var root = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true })!;
        int ops = _r.Next(10) < 7 ? 1 : 2 + _r.Next(2); // mostly one change, so that deeper code sees mutants too
        bool duplicate = false, truncate = false;
        for (int k = 0; k < ops; k++)
        {
            var nodes = Nodes(root);
            var (node, parent, key, index) = nodes[_r.Next(nodes.Count)];
            int op = _r.Next(12);
            if (parent is null || op == 10) { duplicate = true; continue; }
            if (op == 11) { truncate = true; continue; }
            if (op is 8 or 9 && parent is JsonObject po && key is not null) { po.Remove(key); continue; }
            if (op == 7 && parent is JsonObject pk) { pk["unknown_" + _r.Next(100)] = Replacement(null); continue; }
            var replacement = Replacement(node);
            if (parent is JsonObject o) o[key!] = replacement;
            else ((JsonArray)parent)[index] = replacement;
        }
        string result = root.ToJsonString();
        if (duplicate)
        {
            // A duplicated key right after an opening brace: {"k": 1, ...} becomes {"k": 1, "k": 1, ...}.
            var m = DuplicateTarget().Matches(result);
            if (m.Count > 0)
            {
                var pick = m[_r.Next(m.Count)];
                result = result.Insert(pick.Index + 1, pick.Groups[1].Value + ",");
            }
        }
        if (truncate && result.Length > 2) result = result[.._r.Next(1, result.Length)];
        return result;
    }

    [GeneratedRegex("""\{("[a-z_]+":(?:-?[0-9.e+]+|"[^"\\]{0,40}"|true|false|null))""")]
    private static partial Regex DuplicateTarget();

    [GeneratedRegex(@"(?<![\w.])-?\d+(\.\d+)?(?![\w.])")]
    private static partial Regex YamlNumber();

    /// <summary>Line- and token-level mutations of a YAML document.</summary>
    public string Yaml(string text)
    {
        var lines = text.Split('\n').ToList();
        int ops = 1 + _r.Next(3);
        for (int k = 0; k < ops; k++)
        {
            int i = _r.Next(lines.Count);
            switch (_r.Next(11))
            {
                case 0: case 1:
                    var nums = YamlNumber().Matches(lines[i]);
                    if (nums.Count > 0)
                    {
                        var n = nums[_r.Next(nums.Count)];
                        string v = Pick(["0", "-1", "1e26", "1e308", "-1e308", "100000", "0.5", "2", "NaN", ".inf", "999999999999"]);
                        lines[i] = lines[i][..n.Index] + v + lines[i][(n.Index + n.Length)..];
                    }
                    break;
                case 2: lines.Insert(i, lines[i]); break;                       // duplicate key / item
                case 3: lines.RemoveAt(i); if (lines.Count == 0) lines.Add(""); break;
                case 4: lines[i] = "  " + lines[i]; break;
                case 5:
                {
                    int depth = _r.Next(2) == 0 ? 40 : 500;
                    lines[i] = Regex.Replace(lines[i], @":\s*(\S.*)$", m => ": " + new string('[', depth) + m.Groups[1].Value + new string(']', depth));
                    break;
                }
                case 6:
                    lines.Add("bomb0: &b0 [x, x, x, x, x, x, x, x]");
                    for (int b = 1; b < 2 + _r.Next(8); b++) lines.Add($"bomb{b}: &b{b} [" + string.Join(", ", Enumerable.Repeat($"*b{b - 1}", 8)) + "]");
                    break;
                case 7: lines.Insert(i, Pick(["? [a, b]", "? {x: 1}", "<<: *nothing", "&a b: *a", "\t\tbad: tab", "key: 'unterminated", "merge_method: \u0000", "%YAML 9.9"])); break;
                case 8: lines[i] = Regex.Replace(lines[i], @"merge_method:\s*\S+", "merge_method: " + Pick(["ties", "slerp", "passthrough", "linear", "nope", "", "[ties]", "model_stock", "dare_ties"])); break;
                case 9: lines[i] = Regex.Replace(lines[i], @"layer_range:\s*\[[^\]]*\]", $"layer_range: [{_r.Next(-2, 6)}, {_r.Next(-2, 6)}]"); break;
                default: lines[i] = lines[i].Length > 1 ? lines[i][.._r.Next(lines[i].Length)] : lines[i] + "\u0001"; break;
            }
        }
        return string.Join('\n', lines);
    }

    /// <summary>Raw byte mutations inside a GGUF header (before the tensor data) or a truncation.</summary>
    public byte[] GgufBytes(byte[] file, long dataOffset)
    {
        var b = (byte[])file.Clone();
        int header = (int)Math.Min(dataOffset, b.Length);
        int ops = 1 + _r.Next(4);
        for (int k = 0; k < ops; k++)
        {
            int at = _r.Next(8, Math.Max(9, header - 8));
            switch (_r.Next(5))
            {
                case 0: b[at] ^= (byte)(1 << _r.Next(8)); break;
                case 1: b[at] = (byte)_r.Next(256); break;
                case 2: BitConverter.TryWriteBytes(b.AsSpan(at, 4), Pick([0u, 1u, 0xFFFFFFFFu, 0x7FFFFFFFu, 26u, 9u, 30u])); break;
                case 3: BitConverter.TryWriteBytes(b.AsSpan(at, 8), Pick([0ul, ulong.MaxValue, 1ul << 40, 1ul << 62])); break;
                default: return b[.._r.Next(1, b.Length)];
            }
        }
        return b;
    }

    /// <summary>
    /// A structured GGUF mutation: a metadata value changed, retyped, removed or added; the vocabulary damaged; or a
    /// tensor retyped, reshaped, renamed, removed or duplicated. Written through <see cref="GgufWriter"/> with the
    /// original tensor bytes (cut or zero-padded to the declared size). Returns what was done.
    /// </summary>
    public string GgufStructured(string source, string destination)
    {
        using var f = GgufFile.Open(source);
        var md = f.MetadataInOrder.Where(kv => kv.Key != GgufKeys.General.Alignment).ToList();
        var tensors = f.Tensors.Select(t => (Info: t, Name: t.Name, Dims: (long[])t.Dimensions.Clone(), Type: t.Type)).ToList();
        string arch = f.Architecture ?? "llama";
        string what;
        switch (_r.Next(10))
        {
            case 0: case 1:
            {
                int i = _r.Next(md.Count);
                var (k, v) = md[i];
                var nv = MutateValue(v);
                md[i] = new(k, nv);
                what = $"metadata {k}: {v.Type}/{v.ElementType} -> {nv.Type}/{nv.ElementType}";
                break;
            }
            case 2:
            {
                int i = _r.Next(md.Count);
                what = $"removed {md[i].Key}";
                md.RemoveAt(i);
                break;
            }
            case 3:
            {
                string k = Pick([GgufKeys.Llm.ExpertCount(arch), GgufKeys.Llm.ExpertUsedCount(arch), GgufKeys.Llm.KeyLength(arch), GgufKeys.Llm.ValueLength(arch),
                    GgufKeys.Llm.RopeScaleLinear(arch), GgufKeys.Llm.RopeScalingFactor(arch), GgufKeys.General.Alignment, GgufKeys.Tokenizer.AddBos,
                    GgufKeys.Tokenizer.Merges, "tokenizer.ggml.eot_token_id", "tokenizer.ggml.add_space_prefix", GgufKeys.Tokenizer.Pre, GgufKeys.Tokenizer.ChatTemplate]);
                var v = Pick<GgufValue>([GgufValue.Of(2u), GgufValue.Of(0u), GgufValue.Of(64u), GgufValue.Of(-1), GgufValue.Of(1e30f), GgufValue.Of(true), GgufValue.Of("gpt-2"),
                    GgufValue.Of(new[] { "a b", "" }), GgufValue.Of(uint.MaxValue), GgufValue.Of("{{ messages }}")]);
                md.RemoveAll(kv => kv.Key == k);
                md.Add(new(k, v));
                what = $"added {k} = {v}";
                break;
            }
            case 4:
            {
                int i = md.FindIndex(kv => kv.Key == GgufKeys.Tokenizer.Tokens);
                var tokens = (string[])((string[])md[i].Value.Value).Clone();
                int op = _r.Next(5);
                int a = _r.Next(tokens.Length), b = _r.Next(tokens.Length);
                switch (op)
                {
                    case 0: tokens[a] = tokens[b]; break;
                    case 1: tokens[a] = ""; break;
                    case 2: tokens = tokens.Take(a).ToArray(); break;
                    case 3: tokens[a] = tokens[a] + "\u0000\n" + new string('z', 300); break;
                    default: for (int t = 0; t < tokens.Length; t++) if (tokens[t].StartsWith("<0x", StringComparison.Ordinal) || tokens[t].Length == 1) tokens[t] = $"[gone{t}]"; break;
                }
                md[i] = new(GgufKeys.Tokenizer.Tokens, GgufValue.Of(tokens));
                what = $"tokens op {op} at {a}/{b}";
                break;
            }
            case 5: case 6:
            {
                int i = _r.Next(tensors.Count);
                var type = Pick(Enum.GetValues<GgmlType>());
                tensors[i] = tensors[i] with { Type = type };
                what = $"tensor {tensors[i].Name} -> {type}";
                break;
            }
            case 7:
            {
                int i = _r.Next(tensors.Count);
                var dims = tensors[i].Dims;
                long[] nd = _r.Next(4) switch
                {
                    0 => dims.Reverse().ToArray(),
                    1 => [dims.Aggregate(1L, (x, y) => x * y)],
                    2 => dims.Select(d => Math.Max(1, d / 2)).ToArray(),
                    _ => [.. dims, 1],
                };
                tensors[i] = tensors[i] with { Dims = nd };
                what = $"tensor {tensors[i].Name} dims -> [{string.Join(",", nd)}]";
                break;
            }
            case 8:
            {
                int i = _r.Next(tensors.Count);
                what = $"tensor {tensors[i].Name} removed";
                tensors.RemoveAt(i);
                break;
            }
            default:
            {
                int i = _r.Next(tensors.Count);
                string name = Pick(["blk.99.attn_q.weight", tensors[i].Name + ".x", "rope_freqs.weight", "blk.0.ffn_gate_exps.weight", "output.weight", "evil\n\u0000name"]);
                if (tensors.Any(t => t.Name == name)) name += "2";
                tensors.Add(tensors[i] with { Name = name });
                what = $"tensor {tensors[i].Name} duplicated as {name}";
                break;
            }
        }
        using var w = new GgufWriter(destination);
        foreach (var (k, v) in md) w.SetMetadata(k, v);
        var declared = new List<((GgufTensorInfo Info, string Name, long[] Dims, GgmlType Type) T, GgufTensorInfo D)>();
        foreach (var t in tensors)
        {
            try { declared.Add((t, w.AddTensor(t.Name, t.Dims, t.Type))); }
            catch (ArgumentException) { throw new MutationNotApplicable(); } // elements do not fill the new type's blocks
        }
        foreach (var (t, d) in declared)
        {
            var data = new byte[d.ByteSize];
            var src = f.TensorBytes(t.Info);
            src[..(int)Math.Min(src.Length, data.Length)].CopyTo(data);
            w.WriteTensorData(d.Name, data);
        }
        w.Commit();
        return what;
    }

    private GgufValue MutateValue(GgufValue v)
    {
        if (v.IsArray)
        {
            var arr = (Array)v.Value;
            return _r.Next(3) switch
            {
                0 => GgufValue.Of(new int[Math.Max(0, arr.Length - 1 - _r.Next(Math.Max(1, arr.Length)))]),
                1 => GgufValue.Of(new float[arr.Length]),
                _ => GgufValue.Of(arr.Cast<object>().Select(x => Convert.ToString(x, System.Globalization.CultureInfo.InvariantCulture) ?? "").ToArray()),
            };
        }
        return _r.Next(8) switch
        {
            0 => GgufValue.Of(0u),
            1 => GgufValue.Of(uint.MaxValue),
            2 => GgufValue.Of(-3),
            3 => GgufValue.Of(_r.Next(2) == 0 ? float.NaN : -1f),
            4 => GgufValue.Of(1e38f),
            5 => GgufValue.Of(v.Value is string s ? s + "\u0000" + new string('q', 1000) : "text"),
            6 => v.Value is uint u ? GgufValue.Of(u * 2 + 1) : GgufValue.Of(7u),
            _ => new GgufValue(GgufValueType.UInt64, ulong.MaxValue),
        };
    }
}

/// <summary>A mutation that cannot be written (e.g. a type whose blocks the tensor's rows do not fill): pick another.</summary>
internal sealed class MutationNotApplicable : Exception;
