using System.Buffers;
using System.Runtime.InteropServices;
using System.Text;

namespace Consort.Formats.Gguf;

/// <summary>
/// Writes a GGUF v3 file in one streaming pass: declare metadata and tensors, then write each
/// tensor's data in declaration order. Only one tensor needs to be in memory at a time; the file
/// appears at its destination only after <see cref="Commit"/> (written to a temporary name first).
/// </summary>
public sealed class GgufWriter : IDisposable
{
    private readonly List<KeyValuePair<string, GgufValue>> _metadata = [];
    private readonly List<GgufTensorInfo> _tensors = [];
    private readonly AtomicFile _file;
    private readonly BinaryWriter _w;
    private int _next = -1;
    private long _dataStart;
    private long _partial;

    /// <summary>Starts a file for <paramref name="path"/>; <paramref name="direct"/> writes it around the page cache
    /// where the file system allows (large outputs, see <see cref="AtomicFile"/>).</summary>
    public GgufWriter(string path, int alignment = 32, bool direct = false)
    {
        Alignment = alignment;
        _file = new AtomicFile(path, direct);
        _w = new BinaryWriter(_file.Stream, Encoding.UTF8, leaveOpen: true);
    }

    /// <summary>Data alignment.</summary>
    public int Alignment { get; }
    /// <summary>Declared tensors.</summary>
    public IReadOnlyList<GgufTensorInfo> Tensors => _tensors;
    /// <summary>Declared metadata by key, as the file will hold it (general.alignment included when not the default).</summary>
    public IReadOnlyDictionary<string, GgufValue> Metadata
    {
        get
        {
            var d = new Dictionary<string, GgufValue>(_metadata, StringComparer.Ordinal);
            if (Alignment != 32) d[GgufKeys.General.Alignment] = GgufValue.Of((uint)Alignment);
            return d;
        }
    }

    /// <summary>What <see cref="GgufValidator"/> says of the declared file: call it before writing data, so a file
    /// llama.cpp would abort on is refused before any work.</summary>
    public GgufVerdict Validate() => GgufValidator.Validate(_file.Destination, Metadata, _tensors);

    /// <summary>Adds or replaces a metadata entry (before data starts).</summary>
    public void SetMetadata(string key, GgufValue value)
    {
        EnsureDeclaring();
        int i = _metadata.FindIndex(kv => kv.Key == key);
        if (i >= 0) _metadata[i] = new(key, value); else _metadata.Add(new(key, value));
    }

    /// <summary>Removes a metadata entry if present.</summary>
    public void RemoveMetadata(string key) { EnsureDeclaring(); _metadata.RemoveAll(kv => kv.Key == key); }

    /// <summary>Copies all metadata of <paramref name="source"/> (general.alignment excluded).</summary>
    public void CopyMetadata(GgufFile source)
    {
        foreach (var kv in source.MetadataInOrder)
            if (kv.Key != GgufKeys.General.Alignment) SetMetadata(kv.Key, kv.Value);
    }

    /// <summary>Declares a tensor (dimensions innermost-first, as GGUF stores them).</summary>
    public GgufTensorInfo AddTensor(string name, long[] dimensions, GgmlType type)
    {
        EnsureDeclaring();
        if (_tensors.Any(t => t.Name == name)) throw new ArgumentException($"tensor '{name}' declared twice");
        long elements = dimensions.Aggregate(1L, (a, b) => a * b);
        long bytes = GgmlTypes.ByteSize(type, elements);
        if (bytes < 0) throw new ArgumentException($"tensor '{name}': {elements} elements do not fill whole {type} blocks");
        long offset = 0;
        if (_tensors.Count > 0)
        {
            var last = _tensors[^1];
            offset = Align(last.Offset + last.ByteSize);
        }
        var info = new GgufTensorInfo(name, (long[])dimensions.Clone(), type, offset, bytes);
        _tensors.Add(info);
        return info;
    }

    /// <summary>Writes one tensor's raw bytes; tensors must come in declaration order.</summary>
    public void WriteTensorData(string name, ReadOnlySpan<byte> data)
    {
        if (_next < 0) WriteHeader();
        if (_next >= _tensors.Count) throw new InvalidOperationException($"tensor '{name}' was not declared");
        var t = _tensors[_next];
        if (t.Name != name) throw new InvalidOperationException($"expected data of tensor '{t.Name}', got '{name}'");
        if (data.Length != t.ByteSize) throw new ArgumentException($"tensor '{name}': {data.Length} bytes given, {t.ByteSize} expected");
        if (_partial != 0) throw new InvalidOperationException($"tensor '{t.Name}' is being written in chunks");
        Pad(_dataStart + t.Offset);
        _w.Write(data);
        _next++;
    }

    /// <summary>
    /// Appends part of the next tensor's raw bytes, so a large tensor can be streamed without holding it whole;
    /// the tensor is complete when its declared byte size has been written.
    /// </summary>
    public void WriteTensorChunk(string name, ReadOnlySpan<byte> chunk)
    {
        if (_next < 0) WriteHeader();
        if (_next >= _tensors.Count) throw new InvalidOperationException($"tensor '{name}' was not declared");
        var t = _tensors[_next];
        if (t.Name != name) throw new InvalidOperationException($"expected data of tensor '{t.Name}', got '{name}'");
        if (_partial + chunk.Length > t.ByteSize) throw new ArgumentException($"tensor '{name}': {_partial + chunk.Length} bytes given, {t.ByteSize} expected");
        if (_partial == 0) Pad(_dataStart + t.Offset);
        _w.Write(chunk);
        _partial += chunk.Length;
        if (_partial == t.ByteSize) { _next++; _partial = 0; }
    }

    /// <summary>Encodes F32 values to the tensor's declared type and writes them.</summary>
    public void WriteTensor(string name, ReadOnlySpan<float> values)
    {
        var t = _tensors.Find(x => x.Name == name) ?? throw new InvalidOperationException($"tensor '{name}' was not declared");
        if (values.Length != t.ElementCount) throw new ArgumentException($"tensor '{name}': {values.Length} values given, {t.ElementCount} expected");
        if (t.Type == GgmlType.F32)
        {
            WriteTensorData(name, MemoryMarshal.AsBytes(values));
            return;
        }
        var buffer = ArrayPool<byte>.Shared.Rent(checked((int)t.ByteSize));
        try
        {
            var span = buffer.AsSpan(0, (int)t.ByteSize);
            Formats.TensorCodec.Encode(t.Type, values, span);
            WriteTensorData(name, span);
        }
        finally { ArrayPool<byte>.Shared.Return(buffer); }
    }

    /// <summary>Finishes the file and moves it into place. Every declared tensor must have been written.</summary>
    public void Commit()
    {
        if (_next < 0) WriteHeader();
        if (_next != _tensors.Count) throw new InvalidOperationException($"only {_next} of {_tensors.Count} tensors were written (next: '{_tensors[_next].Name}')");
        _w.Flush();
        _file.Commit();
    }

    /// <summary>Discards the temporary file unless committed.</summary>
    public void Dispose()
    {
        // BinaryWriter keeps no buffer of its own; the stream is owned (and closed) by the atomic file.
        _file.Dispose();
    }

    private long Align(long x) => (x + Alignment - 1) / Alignment * Alignment;

    private void EnsureDeclaring()
    {
        if (_next >= 0) throw new InvalidOperationException("metadata and tensors must be declared before tensor data is written");
    }

    private void Pad(long to)
    {
        long pos = _w.BaseStream.Position;
        if (pos > to) throw new InvalidOperationException("tensor data out of order");
        for (; pos < to; pos++) _w.Write((byte)0);
    }

    private void WriteHeader()
    {
        var meta = _metadata.ToList();
        if (Alignment != 32) meta.Add(new(GgufKeys.General.Alignment, GgufValue.Of((uint)Alignment)));
        _w.Write(GgufFile.Magic);
        _w.Write(3u);
        _w.Write((ulong)_tensors.Count);
        _w.Write((ulong)meta.Count);
        foreach (var (key, value) in meta)
        {
            WriteString(key);
            _w.Write((uint)value.Type);
            WriteValue(value);
        }
        foreach (var t in _tensors)
        {
            WriteString(t.Name);
            _w.Write((uint)t.Dimensions.Length);
            foreach (var d in t.Dimensions) _w.Write((ulong)d);
            _w.Write((uint)t.Type);
            _w.Write((ulong)t.Offset);
        }
        _dataStart = Align(_w.BaseStream.Position);
        Pad(_dataStart);
        _next = 0;
    }

    private void WriteString(string s)
    {
        var bytes = Encoding.UTF8.GetBytes(s);
        _w.Write((ulong)bytes.Length);
        _w.Write(bytes);
    }

    private void WriteValue(GgufValue v)
    {
        if (v.Type != GgufValueType.Array)
        {
            WriteScalar(v.Type, v.Value);
            return;
        }
        var arr = (Array)v.Value;
        _w.Write((uint)v.ElementType);
        _w.Write((ulong)arr.Length);
        foreach (var item in arr) WriteScalar(v.ElementType, item!);
    }

    private void WriteScalar(GgufValueType type, object value)
    {
        switch (type)
        {
            case GgufValueType.UInt8: _w.Write(Convert.ToByte(value)); break;
            case GgufValueType.Int8: _w.Write(Convert.ToSByte(value)); break;
            case GgufValueType.UInt16: _w.Write(Convert.ToUInt16(value)); break;
            case GgufValueType.Int16: _w.Write(Convert.ToInt16(value)); break;
            case GgufValueType.UInt32: _w.Write(Convert.ToUInt32(value)); break;
            case GgufValueType.Int32: _w.Write(Convert.ToInt32(value)); break;
            case GgufValueType.Float32: _w.Write(Convert.ToSingle(value)); break;
            case GgufValueType.Bool: _w.Write((byte)(Convert.ToBoolean(value) ? 1 : 0)); break;
            case GgufValueType.String: WriteString((string)value); break;
            case GgufValueType.UInt64: _w.Write(Convert.ToUInt64(value)); break;
            case GgufValueType.Int64: _w.Write(Convert.ToInt64(value)); break;
            case GgufValueType.Float64: _w.Write(Convert.ToDouble(value)); break;
            default: throw new NotSupportedException($"GGUF value type {type}");
        }
    }
}
