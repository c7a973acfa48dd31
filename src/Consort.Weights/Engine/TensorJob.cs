using Consort.Formats;
using Consort.Weights.Config;

namespace Consort.Weights.Engine;

/// <summary>
/// One output tensor being merged: its inputs (memory-mapped), resolved parameters, chunked reads and the ordered
/// output stream. Methods read chunks, may make extra passes for whole-tensor statistics, and emit output chunks
/// in order; nothing larger than a few chunks is ever held.
/// </summary>
public sealed class TensorJob
{
    private readonly ITensorSource[] _sources;
    private readonly TensorEntry[] _entries;
    private readonly Action<ReadOnlySpan<float>> _emit;
    private readonly List<float[]> _buffers;
    private readonly MergeConfig _config;
    private readonly int[] _modelSource;
    private readonly int _layers;

    private readonly List<float[]>? _whole;
    private readonly bool[] _decoded;
    private readonly bool[] _read;
    private readonly Action<long, ReadOnlySpan<float>>? _emitAt;
    private long _emittedAt;
    private readonly RowRemap?[]? _remaps;

    // Decodes from an input, through its row map when the tensor's rows are tokens of another vocabulary.
    private void Decode(int source, long start, Span<float> dst)
    {
        if (_remaps?[source] is { } remap)
            remap.Read(start, dst, RowLength, (s, at, d) => _sources[s].ReadFloat32(_entries[s], at, d), source);
        else _sources[source].ReadFloat32(_entries[source], start, dst);
    }

    private void ReleasePages(int source, long start, int count)
    {
        if (_remaps?[source] is null) MappedPages.Release(_sources[source], _entries[source], start, count);
    }

    /// <summary>Whether input <paramref name="source"/> is seen through a token row map (the tensor's rows are the output vocabulary's).</summary>
    public bool IsRemapped(int source) => _remaps?[source] is not null;

    internal TensorJob(string name, long count, ITensorSource[] sources, TensorEntry[] entries, int baseSource, int[] modelSource,
        MergeConfig config, int layers, int chunk, List<float[]> buffers, Action<ReadOnlySpan<float>> emit,
        List<float[]>? whole = null, int parallelism = 1, Action<long, ReadOnlySpan<float>>? emitAt = null, string? parameterName = null,
        RowRemap?[]? remaps = null)
    {
        _remaps = remaps;
        _emitAt = emitAt;
        ParameterName = parameterName ?? name;
        Name = name; Count = count; _sources = sources; _entries = entries; BaseSource = baseSource; _modelSource = modelSource;
        _config = config; _layers = layers; ChunkSize = chunk; _buffers = buffers; _emit = emit;
        _whole = whole; _decoded = new bool[sources.Length]; _read = new bool[sources.Length];
        Parallelism = Math.Max(1, parallelism);
    }

    /// <summary>
    /// True when the engine decided the tensor's inputs fit its memory budget: <see cref="Whole"/> may be used (each
    /// input is decoded once), <see cref="Read"/> copies from memory, <see cref="ReadBlock"/> decodes blocks in
    /// parallel, and the output is held whole, so <see cref="EmitAt"/> may write it block by block in any order.
    /// </summary>
    public bool InMemory => _whole is not null;

    /// <summary>Worker threads an in-memory method may use.</summary>
    public int Parallelism { get; }

    private float[] Slot(int source)
    {
        var pool = _whole ?? throw new InvalidOperationException($"tensor '{Name}' is not held in memory");
        while (pool.Count <= source) pool.Add([]);
        if (pool[source].Length < Count) { pool[source] = []; pool[source] = new float[Count]; }
        return pool[source];
    }

    private ParallelOptions Options => new() { MaxDegreeOfParallelism = Parallelism };

    /// <summary>
    /// The whole tensor of source <paramref name="source"/> decoded to F32 (decoded once per tensor, in parallel);
    /// only the first <see cref="Count"/> elements are meaningful. In-memory jobs only.
    /// </summary>
    public float[] Whole(int source)
    {
        var a = Slot(source);
        if (_decoded[source]) return a;
        int chunk = ChunkSize;
        Parallel.For(0, (int)((Count + chunk - 1) / chunk), Options, c =>
        {
            long s = (long)c * chunk; int n = (int)Math.Min(chunk, Count - s);
            DecodeInto(source, s, a.AsSpan((int)s, n));
        });
        BytesRead += Formats.Gguf.GgmlTypes.ByteSize(_entries[source].Type, Count);
        _decoded[source] = true;
        return a;
    }

    private void DecodeInto(int source, long start, Span<float> dst)
    {
        Decode(source, start, dst);
        ReleasePages(source, start, dst.Length);
    }

    /// <summary>
    /// Decodes elements [start, start + dst.Length) of source <paramref name="source"/> straight from its mapping
    /// (thread-safe: parallel workers may read disjoint blocks). Call <see cref="FinishReading"/> once per source
    /// when done. In-memory jobs only.
    /// </summary>
    public void ReadBlock(int source, long start, Span<float> dst)
    {
        if (!InMemory) throw new InvalidOperationException($"tensor '{Name}' is not held in memory");
        Decode(source, start, dst);
    }

    /// <summary>Accounts <paramref name="passes"/> full reads of source <paramref name="source"/> through <see cref="ReadBlock"/>;
    /// its pages leave the resident set when the tensor is done (<see cref="ReleaseInputs"/>), not now: a method
    /// that makes another pass would fault every page in again (an in-memory tensor's inputs fit the budget anyway).</summary>
    public void FinishReading(int source, double passes = 1)
    {
        BytesRead += (long)(passes * Formats.Gguf.GgmlTypes.ByteSize(_entries[source].Type, Count));
        _read[source] = true;
    }

    /// <summary>Drops the pages of every input read through <see cref="ReadBlock"/> from the resident set (the engine
    /// calls it once the tensor is merged).</summary>
    internal void ReleaseInputs()
    {
        for (int source = 0; source < _read.Length; source++)
        {
            if (!_read[source] || _remaps?[source] is not null) continue;
            _read[source] = false;
            for (long s = 0; s < Count; s += 1 << 24) MappedPages.Release(_sources[source], _entries[source], s, (int)Math.Min(1 << 24, Count - s));
        }
    }

    /// <summary>
    /// Encodes output elements [start, start + values.Length) in place (thread-safe for disjoint ranges; start and
    /// length aligned to the output's block size except at the end). The output is complete when every element was
    /// emitted once. In-memory jobs only; do not mix with <see cref="Emit"/>.
    /// </summary>
    public void EmitAt(long start, ReadOnlySpan<float> values)
    {
        if (_emitAt is null) throw new InvalidOperationException($"tensor '{Name}' is not held in memory");
        _emitAt(start, values);
        Interlocked.Add(ref _emittedAt, values.Length);
    }

    /// <summary>Elements emitted through <see cref="EmitAt"/>.</summary>
    internal long EmittedAt => Interlocked.Read(ref _emittedAt);

    /// <summary>Tensor name.</summary>
    public string Name { get; }

    /// <summary>
    /// The name parameters are resolved for (filters and layer gradients): the tensor's own name, or for a slice of
    /// layers the name at its position within the slice.
    /// </summary>
    public string ParameterName { get; }
    /// <summary>Element count.</summary>
    public long Count { get; }

    /// <summary>Length of the innermost dimension (a row), the whole tensor for 1-D tensors.</summary>
    public long RowLength => _entries.First(e => e is not null).Shape[^1];
    /// <summary>Elements per chunk.</summary>
    public int ChunkSize { get; }
    /// <summary>Index (into sources) of the base model, or -1.</summary>
    public int BaseSource { get; }
    /// <summary>Number of entries in the config's models list.</summary>
    public int ModelCount => _modelSource.Length;
    /// <summary>Seed of the merge.</summary>
    public int Seed => _config.Seed;
    /// <summary>Bytes decoded from inputs so far (for the summary).</summary>
    public long BytesRead { get; private set; }

    /// <summary>Source index of models[<paramref name="model"/>].</summary>
    public int SourceOf(int model) => _modelSource[model];

    /// <summary>models list entries that are not the base model.</summary>
    public IEnumerable<int> NonBaseModels() => Enumerable.Range(0, ModelCount).Where(m => _modelSource[m] != BaseSource);

    /// <summary>A per-model parameter for this tensor, or <paramref name="fallback"/> (null: required).</summary>
    public double ModelParam(int model, string name, double? fallback)
    {
        var v = _config.Models[model].Parameters.GetValueOrDefault(name)?.Resolve(ParameterName, _layers);
        if (v is null && _config.Parameters.GetValueOrDefault(name)?.Resolve(ParameterName, _layers) is { } g) v = g; // mergekit: globals act as defaults
        return v switch
        {
            double d => d,
            bool b => b ? 1 : 0,
            null => fallback ?? throw new ConfigException($"merge: model '{Path.GetFileName(_config.Models[model].Path)}' needs parameter '{name}' (for tensor {Name})"),
            _ => throw new ConfigException($"merge: parameter '{name}' must be a number"),
        };
    }

    /// <summary>A global parameter for this tensor.</summary>
    public double Global(string name, double? fallback) => _config.Parameters.GetValueOrDefault(name)?.Resolve(ParameterName, _layers) switch
    {
        double d => d,
        bool b => b ? 1 : 0,
        null => fallback ?? throw new ConfigException($"merge: parameter '{name}' is required (for tensor {Name})"),
        var o => throw new ConfigException($"merge: parameter '{name}' must be a number, got {o}"),
    };

    /// <summary>A global boolean parameter.</summary>
    public bool Flag(string name, bool fallback) => _config.Parameters.GetValueOrDefault(name)?.Resolve(ParameterName, _layers) switch
    {
        bool b => b,
        double d => d != 0,
        _ => fallback,
    };

    /// <summary>A reusable buffer of <see cref="ChunkSize"/> floats (slot 0, 1, ...).</summary>
    public float[] Buffer(int slot)
    {
        while (_buffers.Count <= slot) _buffers.Add(new float[ChunkSize]);
        return _buffers[slot];
    }

    /// <summary>Decodes elements [start, start+dst.Length) of the tensor from source <paramref name="source"/>.</summary>
    public void Read(int source, long start, Span<float> dst)
    {
        if (InMemory)
        {
            Whole(source).AsSpan(checked((int)start), dst.Length).CopyTo(dst);
            return;
        }
        Decode(source, start, dst);
        BytesRead += Formats.Gguf.GgmlTypes.ByteSize(_entries[source].Type, dst.Length);
        ReleasePages(source, start, dst.Length);
    }

    /// <summary>Chunk boundaries in order.</summary>
    public IEnumerable<(long Start, int Length)> Chunks()
    {
        for (long s = 0; s < Count; s += ChunkSize) yield return (s, (int)Math.Min(ChunkSize, Count - s));
    }

    /// <summary>Streams (model - base) of a source, chunk by chunk (the raw values when there is no base).</summary>
    public void ScanDelta(int source, Action<ReadOnlySpan<float>> visit, int slotA = 30, int slotB = 31)
    {
        var a = Buffer(slotA); var b = Buffer(slotB);
        foreach (var (s, n) in Chunks())
        {
            Read(source, s, a.AsSpan(0, n));
            if (BaseSource >= 0 && BaseSource != source)
            {
                Read(BaseSource, s, b.AsSpan(0, n));
                System.Numerics.Tensors.TensorPrimitives.Subtract(a.AsSpan(0, n), b.AsSpan(0, n), a.AsSpan(0, n));
            }
            visit(a.AsSpan(0, n));
        }
    }

    /// <summary>Writes the next output chunk (chunks must come in order and cover the tensor).</summary>
    public void Emit(ReadOnlySpan<float> chunk) => _emit(chunk);
}
