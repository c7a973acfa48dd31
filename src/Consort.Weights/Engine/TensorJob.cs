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

    internal TensorJob(string name, long count, ITensorSource[] sources, TensorEntry[] entries, int baseSource, int[] modelSource,
        MergeConfig config, int layers, int chunk, List<float[]> buffers, Action<ReadOnlySpan<float>> emit)
    {
        Name = name; Count = count; _sources = sources; _entries = entries; BaseSource = baseSource; _modelSource = modelSource;
        _config = config; _layers = layers; ChunkSize = chunk; _buffers = buffers; _emit = emit;
    }

    /// <summary>Tensor name.</summary>
    public string Name { get; }
    /// <summary>Element count.</summary>
    public long Count { get; }
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
        var v = _config.Models[model].Parameters.GetValueOrDefault(name)?.Resolve(Name, _layers);
        if (v is null && _config.Parameters.GetValueOrDefault(name)?.Resolve(Name, _layers) is { } g) v = g; // mergekit: globals act as defaults
        return v switch
        {
            double d => d,
            bool b => b ? 1 : 0,
            null => fallback ?? throw new ConfigException($"merge: model '{Path.GetFileName(_config.Models[model].Path)}' needs parameter '{name}' (for tensor {Name})"),
            _ => throw new ConfigException($"merge: parameter '{name}' must be a number"),
        };
    }

    /// <summary>A global parameter for this tensor.</summary>
    public double Global(string name, double? fallback) => _config.Parameters.GetValueOrDefault(name)?.Resolve(Name, _layers) switch
    {
        double d => d,
        bool b => b ? 1 : 0,
        null => fallback ?? throw new ConfigException($"merge: parameter '{name}' is required (for tensor {Name})"),
        var o => throw new ConfigException($"merge: parameter '{name}' must be a number, got {o}"),
    };

    /// <summary>A global boolean parameter.</summary>
    public bool Flag(string name, bool fallback) => _config.Parameters.GetValueOrDefault(name)?.Resolve(Name, _layers) switch
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
        _sources[source].ReadFloat32(_entries[source], start, dst);
        BytesRead += Formats.Gguf.GgmlTypes.ByteSize(_entries[source].Type, dst.Length);
        MappedPages.Release(_sources[source], _entries[source], start, dst.Length);
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
