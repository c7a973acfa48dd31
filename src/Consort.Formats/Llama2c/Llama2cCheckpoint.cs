using System.IO.MemoryMappedFiles;
using Consort.Formats.Gguf;

namespace Consort.Formats.Llama2c;

/// <summary>Hyperparameters from a llama2.c checkpoint header.</summary>
public sealed record Llama2cConfig(int Dim, int HiddenDim, int Layers, int Heads, int KvHeads, int VocabSize, int SeqLen, bool SharedClassifier)
{
    /// <summary>Per-head width.</summary>
    public int HeadSize => Dim / Heads;
}

/// <summary>
/// A llama2.c checkpoint (.bin, legacy version 0: seven int32 hyperparameters then F32 weights), memory-mapped and
/// exposed with GGUF tensor names. llama2.c stores q/k rows in Meta's interleaved rope layout, which is the
/// layout GGUF uses, so no permutation is needed on import.
/// </summary>
public sealed unsafe class Llama2cCheckpoint : ITensorSource
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;
    private readonly Dictionary<string, (TensorEntry Entry, long Offset)> _byName = new();

    private Llama2cCheckpoint(string path, Llama2cConfig config, MemoryMappedFile map, MemoryMappedViewAccessor view, byte* p, List<(TensorEntry, long)> tensors)
    {
        Path = path; Config = config; _map = map; _view = view; _base = p;
        foreach (var t in tensors) _byName[t.Item1.Name] = t;
        Tensors = tensors.Select(t => t.Item1).ToList();
    }

    /// <inheritdoc />
    public string Path { get; }
    /// <inheritdoc />
    public string Format => "llama2c";
    /// <summary>Header values.</summary>
    public Llama2cConfig Config { get; }
    /// <inheritdoc />
    public IReadOnlyList<TensorEntry> Tensors { get; }
    /// <inheritdoc />
    public TensorEntry? Find(string name) => _byName.TryGetValue(name, out var e) ? e.Entry : null;
    /// <inheritdoc />
    public ReadOnlySpan<byte> GetBytes(TensorEntry tensor, long offset, int length)
    {
        var (e, o) = _byName[tensor.Name];
        if (offset < 0 || offset + length > e.ByteSize) throw new ArgumentOutOfRangeException(nameof(offset));
        return new ReadOnlySpan<byte>(_base + o + offset, length);
    }

    /// <summary>Opens and validates a checkpoint: the header must be plausible and the file exactly as long as it implies.</summary>
    public static Llama2cCheckpoint Open(string path)
    {
        path = System.IO.Path.GetFullPath(path);
        if (!File.Exists(path)) throw new ModelFileException(path, "file not found");
        long length = Limits.ResolvedFile(path).Length;
        if (length < 28) throw new ModelFileException(path, $"too small for a llama2.c checkpoint ({length} bytes)");
        var h = new int[7];
        using (var fs = File.OpenRead(path))
        {
            var b = new byte[28];
            fs.ReadExactly(b);
            for (int i = 0; i < 7; i++) h[i] = BitConverter.ToInt32(b, i * 4);
        }
        var c = new Llama2cConfig(h[0], h[1], h[2], h[3], h[4], Math.Abs(h[5]), h[6], h[5] > 0);
        if (c.Dim <= 0 || c.HiddenDim <= 0 || c.Layers <= 0 || c.Heads <= 0 || c.KvHeads <= 0 || c.VocabSize == 0 || c.SeqLen <= 0
            || c.Dim % c.Heads != 0 || c.Heads % c.KvHeads != 0 || c.Dim > 1 << 16 || c.Layers > 1024)
            throw new ModelFileException(path, $"implausible llama2.c header (dim {h[0]}, hidden {h[1]}, layers {h[2]}, heads {h[3]}, kv heads {h[4]}, vocab {h[5]}, seq {h[6]}); not a legacy llama2.c checkpoint?");

        long L = c.Layers, d = c.Dim, hd = c.HiddenDim, kv = (long)c.KvHeads * c.HeadSize;
        var layout = new List<(string Name, long[] Shape)>();
        // Order of the file: each kind of weight for all layers together.
        layout.Add(("token_embd.weight", [c.VocabSize, d]));
        void PerLayer(string n, long[] shape) { for (int l = 0; l < L; l++) layout.Add(($"blk.{l}.{n}", shape)); }
        PerLayer("attn_norm.weight", [d]);
        PerLayer("attn_q.weight", [d, d]);
        PerLayer("attn_k.weight", [kv, d]);
        PerLayer("attn_v.weight", [kv, d]);
        PerLayer("attn_output.weight", [d, d]);
        PerLayer("ffn_norm.weight", [d]);
        PerLayer("ffn_gate.weight", [hd, d]);
        PerLayer("ffn_down.weight", [d, hd]);
        PerLayer("ffn_up.weight", [hd, d]);
        layout.Add(("output_norm.weight", [d]));
        long freqBytes = 2L * c.SeqLen * (c.HeadSize / 2) * 4;
        long offset = 28;
        var tensors = new List<(TensorEntry, long)>();
        foreach (var (n, shape) in layout)
        {
            var e = new TensorEntry(n, shape, GgmlType.F32, shape.Aggregate(1L, (a, b) => a * b) * 4);
            tensors.Add((e, offset));
            offset += e.ByteSize;
        }
        offset += freqBytes; // rope tables: recomputed by llama.cpp, skipped
        if (!c.SharedClassifier)
        {
            var e = new TensorEntry("output.weight", [c.VocabSize, d], GgmlType.F32, (long)c.VocabSize * d * 4);
            tensors.Add((e, offset));
            offset += e.ByteSize;
        }
        if (offset != length)
            throw new ModelFileException(path, $"the header implies {offset} bytes but the file has {length} (truncated, or not a legacy llama2.c checkpoint)");
        var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        var view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        p += view.PointerOffset;
        return new Llama2cCheckpoint(path, c, map, view, p, tensors);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }
}
