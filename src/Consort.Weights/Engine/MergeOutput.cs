using System.Text.Json;
using System.Text.Json.Nodes;
using Consort.Formats;
using Consort.Formats.Conversion;
using Consort.Formats.Gguf;
using Consort.Formats.Safetensors;
using Consort.Weights.Tokenizer;

namespace Consort.Weights.Engine;

/// <summary>Output settings of a merge beyond the path.</summary>
/// <param name="ShardSize">Most bytes of tensor data per safetensors shard (mergekit's out_shard_size), or null for one file.</param>
public sealed record MergeOutputOptions(long? ShardSize = null);

/// <summary>
/// Where merged tensors go: a GGUF file or a safetensors folder, chosen by the output path whatever the inputs are.
/// When the output format differs from the inputs', tensors are renamed (<see cref="TensorNames"/>), q/k rows
/// permuted between the two rope layouts (one head at a time, as the data streams), and the metadata converted
/// (config.json ⇄ GGUF llama.* keys; a GGUF output gets its tokenizer from tokenizer.json).
/// </summary>
public abstract class MergeOutput : IDisposable
{
    /// <summary>Declares a tensor (input naming, shape outermost-first).</summary>
    public abstract void Declare(string name, long[] shape, GgmlType type);
    /// <summary>Appends encoded bytes of the current tensor.</summary>
    public abstract void Write(string name, ReadOnlySpan<byte> bytes);
    /// <summary>Completes the output atomically.</summary>
    public abstract void Commit();
    /// <inheritdoc />
    public abstract void Dispose();
    /// <summary>True for a GGUF output.</summary>
    public abstract bool Gguf { get; }

    /// <summary>True for a GGUF output.</summary>
    public static bool IsGgufSink(MergeOutput o) => o.Gguf;

    /// <summary>True when <paramref name="path"/> names a GGUF file (else a safetensors folder).</summary>
    public static bool IsGguf(string path) => path.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase);

    /// <summary>Records a layer count other than the template's (slices): GGUF <c>ARCH.block_count</c>, or <c>num_hidden_layers</c> in config.json.</summary>
    public abstract void SetLayerCount(int layers);

    /// <summary>Records the predominant output type (GGUF general.file_type; safetensors has no such field).</summary>
    public virtual void SetFileType(GgmlType mostly) { }

    /// <summary>The output vocabulary of a tokenizer merge (tokenizer metadata or files, vocab_size).</summary>
    public abstract void SetVocabulary(TokenizerPlan plan);

    /// <summary>The chat template to store (GGUF tokenizer.chat_template, tokenizer_config.json chat_template).</summary>
    public abstract void SetChatTemplate(string template);

    /// <summary>Opens the output matching <paramref name="path"/>, taking metadata and side files from <paramref name="template"/>.</summary>
    public static MergeOutput Create(string path, ITensorSource template, string name, MergeOutputOptions? options = null)
    {
        options ??= new();
        if (IsGguf(path))
        {
            if (options.ShardSize is not null) throw new ConsortException($"{path}: out_shard_size splits safetensors folders; a .gguf output is one file");
            return template switch
            {
                GgufTensorSource g => new GgufOutput(path, g.File, name),
                SafetensorsModel st => new GgufFromSafetensors(path, st, name),
                _ => throw new ConsortException($"{path}: cannot write {template.Format} inputs as GGUF"),
            };
        }
        return template switch
        {
            SafetensorsModel st => new SafetensorsOutput(path, st.Folder, null, options.ShardSize),
            GgufTensorSource g => new SafetensorsOutput(path, null, g.File, options.ShardSize),
            _ => throw new ConsortException($"{path}: cannot write {template.Format} inputs as safetensors"),
        };
    }

    /// <summary>Sets the tokenizer.* keys of a GGUF output to a plan's vocabulary (padding rows become unused tokens).</summary>
    private static void WriteGgufVocabulary(GgufWriter w, TokenizerPlan plan, string architecture, Func<string, bool> has)
    {
        // A named GGUF tokenizer source brings all its tokenizer keys (special ids, merges, pre-tokenizer).
        if (!plan.Settings.IsUnion && !plan.Settings.IsBase && IsGguf(plan.Settings.Source))
        {
            using var f = GgufFile.Open(plan.Settings.Source);
            foreach (var kv in f.MetadataInOrder.Where(kv => kv.Key.StartsWith("tokenizer.", StringComparison.Ordinal))) w.SetMetadata(kv.Key, kv.Value);
        }
        var tokens = plan.Output.Tokens;
        int pad = plan.Rows - tokens.Count;
        w.SetMetadata("tokenizer.ggml.tokens", GgufValue.Of(tokens.Select(t => t.Text).Concat(Enumerable.Range(tokens.Count, pad).Select(i => $"[PAD{i}]")).ToArray()));
        w.SetMetadata("tokenizer.ggml.scores", GgufValue.Of(tokens.Select(t => t.Score).Concat(Enumerable.Repeat(0f, pad)).ToArray()));
        w.SetMetadata("tokenizer.ggml.token_type", GgufValue.Of(tokens.Select(t => t.Type).Concat(Enumerable.Repeat(5, pad)).ToArray()));
        if (plan.Output.Merges is { } merges) w.SetMetadata("tokenizer.ggml.merges", GgufValue.Of(merges.ToArray()));
        if (has($"{architecture}.vocab_size")) w.SetMetadata($"{architecture}.vocab_size", GgufValue.Of((uint)plan.Rows));
    }

    private static uint FileType(GgmlType mostly) => (uint)(mostly switch { GgmlType.F16 => 1, GgmlType.BF16 => 32, GgmlType.Q8_0 => 7, _ => 0 });

    private sealed class GgufOutput(string path, GgufFile template, string name) : MergeOutput
    {
        private readonly GgufWriter _w = Init(new GgufWriter(path, template.Alignment, direct: true), template, name);

        private static GgufWriter Init(GgufWriter w, GgufFile t, string name)
        {
            w.CopyMetadata(t);
            w.SetMetadata("general.name", GgufValue.Of(name));
            return w;
        }

        public override bool Gguf => true;
        public override void Declare(string n, long[] shape, GgmlType type) => _w.AddTensor(n, shape.Reverse().ToArray(), type);
        public override void Write(string n, ReadOnlySpan<byte> bytes) => _w.WriteTensorChunk(n, bytes);
        public override void Commit() => _w.Commit();
        public override void Dispose() => _w.Dispose();
        public override void SetLayerCount(int layers) => _w.SetMetadata((template.Architecture ?? "llama") + ".block_count", GgufValue.Of((uint)layers));
        public override void SetFileType(GgmlType mostly) => _w.SetMetadata("general.file_type", GgufValue.Of(FileType(mostly)));
        public override void SetVocabulary(TokenizerPlan plan)
        {
            if (!plan.Settings.IsUnion && !plan.Settings.IsBase && IsGguf(plan.Settings.Source))
                foreach (var key in template.Metadata.Keys.Where(k => k.StartsWith("tokenizer.", StringComparison.Ordinal))) _w.RemoveMetadata(key);
            WriteGgufVocabulary(_w, plan, template.Architecture ?? "llama", k => template.Get(k) is not null);
        }
        public override void SetChatTemplate(string t) => _w.SetMetadata("tokenizer.chat_template", GgufValue.Of(t));
    }

    /// <summary>Safetensors inputs into a GGUF file: GGUF names, llama.cpp's q/k row order, llama.* metadata and a tokenizer from tokenizer.json.</summary>
    private sealed class GgufFromSafetensors : MergeOutput
    {
        private readonly GgufWriter _w;
        private readonly SafetensorsModel _template;
        private readonly LlamaHyperparameters _hp;
        private readonly Dictionary<string, string?> _names = new();
        private readonly Dictionary<string, RopeRows> _rope = new();
        private TokenizerPlan? _plan;
        private string? _chat;
        private bool _tokenizerWritten;

        public GgufFromSafetensors(string path, SafetensorsModel template, string name)
        {
            _template = template;
            using var cfg = template.ReadConfig() ?? throw new ModelFileException(Path.Combine(template.Folder, "config.json"), "not found (a GGUF output needs the model's hyperparameters)");
            _hp = LlamaHyperparameters.FromConfigJson(cfg.RootElement, Path.Combine(template.Folder, "config.json"));
            _hasEmbedding = template.Find("model.embed_tokens.weight") is not null;
            foreach (var t in template.Tensors) GgufName(t.Name); // every name checked before any work
            _w = new GgufWriter(path, direct: true);
            _hp.WriteGguf(_w, name, GgmlType.F32);
        }

        private readonly bool _hasEmbedding;

        // The GGUF name of an HF tensor, or null when GGUF has no place for it (rotary buffers; lm_head of tied models).
        private string? GgufName(string n)
        {
            if (n.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal)) return null;
            var g = TensorNames.HfToGguf(n) ?? throw new ModelFileException(_template.Path, $"tensor '{n}' has no GGUF name (not a LLaMA checkpoint?); merge to a folder instead");
            // Tied checkpoints that store only lm_head give it as token_embd; with both, GGUF keeps token_embd.
            if (g == "output.weight" && _hp.TiedEmbeddings) g = _hasEmbedding ? null : "token_embd.weight";
            return g;
        }

        public override bool Gguf => true;
        public override void Declare(string n, long[] shape, GgmlType type)
        {
            var g = _names[n] = GgufName(n);
            if (g is null) return;
            _w.AddTensor(g, shape.Reverse().ToArray(), type);
            if (g.EndsWith("attn_q.weight") || g.EndsWith("attn_k.weight"))
                _rope[n] = new RopeRows(shape[0], GgmlTypes.ByteSize(type, shape[^1]), g.EndsWith("attn_q.weight") ? _hp.Heads : _hp.KvHeads, inverse: false);
        }

        public override void Write(string n, ReadOnlySpan<byte> bytes)
        {
            if (!_tokenizerWritten) WriteTokenizer();
            if (_names[n] is not string g) return;
            if (_rope.TryGetValue(n, out var rope)) rope.Write(bytes, b => _w.WriteTensorChunk(g, b));
            else _w.WriteTensorChunk(g, bytes);
        }

        // The tokenizer goes into the header, written with the first tensor data: from tokenizer.json (the template's,
        // or the tokenizer merge's, written to a scratch folder first).
        private void WriteTokenizer()
        {
            _tokenizerWritten = true;
            int rows = _plan?.Rows ?? (int)(_template.Find("model.embed_tokens.weight") ?? _template.Find("lm_head.weight"))!.Shape[0];
            if (_plan is null) TokenizerJsonImporter.Apply(_w, _template.Folder, rows);
            else
            {
                var scratch = Directory.CreateTempSubdirectory("consort-tokenizer-").FullName;
                try
                {
                    File.Copy(Path.Combine(_template.Folder, "config.json"), Path.Combine(scratch, "config.json"));
                    HfTokenizerFiles.Write(scratch, _template.Folder, _plan, null);
                    TokenizerJsonImporter.Apply(_w, scratch, rows);
                }
                finally { Directory.Delete(scratch, true); }
            }
            if (_plan is not null) _w.SetMetadata("llama.vocab_size", GgufValue.Of((uint)_plan.Rows));
            if (_chat is not null) _w.SetMetadata("tokenizer.chat_template", GgufValue.Of(_chat));
        }

        public override void Commit()
        {
            if (!_tokenizerWritten) WriteTokenizer();
            _w.Commit();
        }
        public override void Dispose() => _w.Dispose();
        public override void SetLayerCount(int layers) => _w.SetMetadata("llama.block_count", GgufValue.Of((uint)layers));
        public override void SetFileType(GgmlType mostly) => _w.SetMetadata("general.file_type", GgufValue.Of(FileType(mostly)));
        public override void SetVocabulary(TokenizerPlan plan) => _plan = plan;
        public override void SetChatTemplate(string t) => _chat = t;
    }

    /// <summary>A safetensors folder (one file, or shards with an index), from safetensors or GGUF inputs.</summary>
    private sealed class SafetensorsOutput : MergeOutput
    {
        private readonly string _folder;
        private readonly string? _templateFolder;
        private readonly GgufFile? _gguf;
        private readonly long? _shardSize;
        private readonly List<(string Name, string OutName, long[] Shape, GgmlType Type)> _declared = [];
        private readonly Dictionary<string, (SafetensorsWriter Writer, string OutName)> _route = new();
        private readonly Dictionary<string, RopeRows> _rope = new();
        private readonly List<(SafetensorsWriter Writer, string File)> _shards = [];
        private LlamaHyperparameters? _hp;
        private int? _layers;
        private TokenizerPlan? _plan;
        private string? _chat;

        public SafetensorsOutput(string folder, string? templateFolder, GgufFile? gguf, long? shardSize)
        {
            _folder = Path.GetFullPath(folder);
            if (File.Exists(_folder)) throw new ConsortException($"{_folder}: exists and is a file; a safetensors output is a folder (or give a .gguf path)");
            if (templateFolder is not null && _folder == Path.GetFullPath(templateFolder)) throw new ConsortException($"{_folder}: refusing to write into an input's folder");
            _templateFolder = templateFolder;
            _gguf = gguf;
            _shardSize = shardSize;
            if (gguf is not null) _hp = LlamaHyperparameters.FromGguf(gguf);
            Directory.CreateDirectory(_folder);
        }

        public override bool Gguf => false;

        public override void Declare(string n, long[] shape, GgmlType type)
        {
            string outName = n;
            if (_gguf is not null)
            {
                outName = TensorNames.GgufToHf(n) ?? throw new ModelFileException(_gguf.Path, $"tensor '{n}' has no Hugging Face name; merge to a .gguf file instead");
                if (n.EndsWith("attn_q.weight") || n.EndsWith("attn_k.weight"))
                    _rope[n] = new RopeRows(shape[0], GgmlTypes.ByteSize(type, shape[^1]), n.EndsWith("attn_q.weight") ? _hp!.Heads : _hp!.KvHeads, inverse: true);
            }
            _declared.Add((n, outName, shape, type));
        }

        // Shards are assigned once every tensor is declared (the first write): a new shard starts when the next tensor
        // would pass the size, as mergekit's writer does.
        private void Open()
        {
            var groups = new List<List<int>> { new() };
            long size = 0;
            for (int i = 0; i < _declared.Count; i++)
            {
                long bytes = GgmlTypes.ByteSize(_declared[i].Type, _declared[i].Shape.Aggregate(1L, (a, b) => a * b));
                if (_shardSize is long max && groups[^1].Count > 0 && size + bytes > max) { groups.Add([]); size = 0; }
                groups[^1].Add(i);
                size += bytes;
            }
            for (int g = 0; g < groups.Count; g++)
            {
                string file = groups.Count == 1 ? "model.safetensors" : $"model-{g + 1:D5}-of-{groups.Count:D5}.safetensors";
                var w = new SafetensorsWriter(Path.Combine(_folder, file)) { Direct = true };
                w.SetMetadata("format", "pt");
                foreach (var i in groups[g])
                {
                    var d = _declared[i];
                    w.AddTensor(d.OutName, d.Shape, d.Type);
                    _route[d.Name] = (w, d.OutName);
                }
                _shards.Add((w, file));
            }
        }

        public override void Write(string n, ReadOnlySpan<byte> bytes)
        {
            if (_shards.Count == 0) Open();
            var (w, outName) = _route[n];
            if (_rope.TryGetValue(n, out var rope)) rope.Write(bytes, b => w.WriteTensorChunk(outName, b));
            else w.WriteTensorChunk(outName, bytes);
        }

        public override void Commit()
        {
            if (_shards.Count == 0) Open();
            foreach (var (w, _) in _shards) w.Commit();
            // A stale index or single file would shadow (or contradict) what was just written.
            var index = Path.Combine(_folder, SafetensorsModel.IndexFileName);
            if (_shards.Count == 1) File.Delete(index);
            else
            {
                File.Delete(Path.Combine(_folder, "model.safetensors"));
                var map = new JsonObject();
                foreach (var d in _declared) map[d.OutName] = _shards.First(s => s.Writer == _route[d.Name].Writer).File;
                var json = new JsonObject
                {
                    ["metadata"] = new JsonObject { ["total_size"] = _shards.Sum(s => s.Writer.DataSize) },
                    ["weight_map"] = map,
                };
                File.WriteAllText(index, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }
            var config = Path.Combine(_folder, "config.json");
            if (_templateFolder is not null)
            {
                foreach (var f in HfTokenizerFiles.OtherSideFiles)
                {
                    var src = Path.Combine(_templateFolder, f);
                    if (File.Exists(src)) File.Copy(src, Path.Combine(_folder, f), overwrite: true);
                }
                HfTokenizerFiles.Write(_folder, _templateFolder, _plan, _chat);
            }
            else
            {
                // From GGUF: config.json from its llama.* keys (GGUF carries no tokenizer.json to copy).
                var dtype = _declared.GroupBy(d => d.Type).OrderByDescending(g => g.Count()).First().Key switch { GgmlType.F16 => "float16", GgmlType.BF16 => "bfloat16", _ => "float32" };
                var hp = _hp! with { TiedEmbeddings = _declared.All(d => d.Name != "output.weight"), VocabSize = _plan?.Rows ?? _hp!.VocabSize };
                File.WriteAllText(config, hp.ToConfigJson(dtype).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                if (_chat is not null) File.WriteAllText(Path.Combine(_folder, "tokenizer_config.json"), new JsonObject { ["chat_template"] = _chat }.ToJsonString());
            }
            if (_layers is int layers && File.Exists(config) && JsonNode.Parse(File.ReadAllText(config)) is JsonObject o)
            {
                o["num_hidden_layers"] = layers;
                File.WriteAllText(config, o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }
        }

        public override void Dispose()
        {
            foreach (var (w, _) in _shards) w.Dispose();
        }
        public override void SetLayerCount(int layers) => _layers = layers;
        public override void SetVocabulary(TokenizerPlan plan) => _plan = plan;
        public override void SetChatTemplate(string t) => _chat = t;
    }

    /// <summary>
    /// Reorders the rows of a q/k projection between Hugging Face's rotate-half layout and llama.cpp's interleaved one
    /// while it streams: rows only move within a head, so one head's rows are buffered at a time (encoded rows are
    /// whole blocks, so bytes can be moved row by row for every type).
    /// </summary>
    private sealed class RopeRows(long rows, long rowBytes, int heads, bool inverse)
    {
        private readonly int _headRows = (int)(rows / heads);
        private byte[]? _buffer, _permuted;
        private int _filled;

        public void Write(ReadOnlySpan<byte> bytes, Action<ReadOnlySpan<byte>> write)
        {
            if (rows % heads != 0 || _headRows % 2 != 0) throw new ConsortException($"{rows} q/k rows cannot be split into {heads} heads of even size");
            int headBytes = checked((int)(_headRows * rowBytes));
            _buffer ??= new byte[headBytes];
            _permuted ??= new byte[headBytes];
            var permuted = _permuted;
            while (bytes.Length > 0)
            {
                int take = Math.Min(bytes.Length, headBytes - _filled);
                bytes[..take].CopyTo(_buffer.AsSpan(_filled));
                _filled += take;
                bytes = bytes[take..];
                if (_filled < headBytes) return;
                int half = _headRows / 2, rb = (int)rowBytes;
                for (int i = 0; i < half; i++)
                    for (int j = 0; j < 2; j++)
                    {
                        int gg = i * 2 + j, hf = j * half + i; // a row's place in llama.cpp's and in HF's layout
                        int dst = inverse ? hf : gg, src = inverse ? gg : hf;
                        _buffer.AsSpan(src * rb, rb).CopyTo(permuted.AsSpan(dst * rb, rb));
                    }
                write(permuted);
                _filled = 0;
            }
        }
    }
}
