using System.Text;
using System.Text.Json;
using Consort.Formats.Gguf;

namespace Consort.Formats.Safetensors;

/// <summary>
/// Writes one .safetensors file in a single streaming pass: declare every tensor (the header needs all offsets),
/// then write their data in declaration order, whole or in chunks. The file appears only on <see cref="Commit"/>.
/// </summary>
public sealed class SafetensorsWriter : IDisposable
{
    private readonly List<(TensorEntry Entry, long Begin)> _tensors = [];
    private readonly Dictionary<string, string> _metadata = new();
    private readonly string _path;
    private AtomicFile? _file;
    private int _next = -1;
    private long _partial;
    private long _dataSize;

    /// <summary>Starts a file for <paramref name="path"/> (nothing is created until data is written).</summary>
    public SafetensorsWriter(string path) { _path = path; }

    /// <summary>Write the file around the page cache where the file system allows (large outputs, see <see cref="AtomicFile"/>).</summary>
    public bool Direct { get; init; }

    /// <summary>Total bytes of tensor data declared.</summary>
    public long DataSize => _dataSize;

    /// <summary>Sets a __metadata__ string (e.g. format = pt).</summary>
    public void SetMetadata(string key, string value)
    {
        if (_next >= 0) throw new InvalidOperationException("metadata must be set before data is written");
        _metadata[key] = value;
    }

    /// <summary>Declares a tensor (shape outermost-first).</summary>
    public TensorEntry AddTensor(string name, long[] shape, GgmlType type)
    {
        if (_next >= 0) throw new InvalidOperationException("tensors must be declared before data is written");
        SafetensorsDType.Name(type);
        if (_tensors.Any(t => t.Entry.Name == name)) throw new ArgumentException($"tensor '{name}' declared twice");
        long bytes = GgmlTypes.ByteSize(type, shape.Aggregate(1L, (a, b) => a * b));
        var entry = new TensorEntry(name, (long[])shape.Clone(), type, bytes);
        _tensors.Add((entry, _dataSize));
        _dataSize += bytes;
        return entry;
    }

    /// <summary>Appends raw bytes of the next tensor (in declaration order); a tensor is complete at its byte size.</summary>
    public void WriteTensorChunk(string name, ReadOnlySpan<byte> chunk)
    {
        if (_next < 0) WriteHeader();
        if (_next >= _tensors.Count) throw new InvalidOperationException($"tensor '{name}' was not declared");
        var t = _tensors[_next].Entry;
        if (t.Name != name) throw new InvalidOperationException($"expected data of tensor '{t.Name}', got '{name}'");
        if (_partial + chunk.Length > t.ByteSize) throw new ArgumentException($"tensor '{name}': more than {t.ByteSize} bytes given");
        _file!.Stream.Write(chunk);
        _partial += chunk.Length;
        if (_partial == t.ByteSize) { _next++; _partial = 0; }
    }

    /// <summary>Encodes F32 values to the declared type and writes them as the whole tensor.</summary>
    public void WriteTensor(string name, ReadOnlySpan<float> values)
    {
        var t = _tensors.Find(x => x.Entry.Name == name).Entry ?? throw new InvalidOperationException($"tensor '{name}' was not declared");
        var buf = new byte[t.ByteSize];
        TensorCodec.Encode(t.Type, values, buf);
        WriteTensorChunk(name, buf);
    }

    /// <summary>Finishes the file and moves it into place.</summary>
    public void Commit()
    {
        if (_next < 0) WriteHeader();
        // Zero-byte tensors complete without a chunk.
        while (_next < _tensors.Count && _tensors[_next].Entry.ByteSize == 0 && _partial == 0) _next++;
        if (_next != _tensors.Count) throw new InvalidOperationException($"only {_next} of {_tensors.Count} tensors were written (next: '{_tensors[_next].Entry.Name}')");
        _file!.Commit();
    }

    private void WriteHeader()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            if (_metadata.Count > 0)
            {
                w.WriteStartObject("__metadata__");
                foreach (var (k, v) in _metadata) w.WriteString(k, v);
                w.WriteEndObject();
            }
            foreach (var (e, begin) in _tensors)
            {
                w.WriteStartObject(e.Name);
                w.WriteString("dtype", SafetensorsDType.Name(e.Type));
                w.WriteStartArray("shape");
                foreach (var d in e.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(begin);
                w.WriteNumberValue(begin + e.ByteSize);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        // Pad with spaces so the data section starts 8-aligned (as the reference writer does).
        int len = (int)ms.Length, padded = (len + 7) / 8 * 8;
        _file = new AtomicFile(_path, Direct);
        _file.Stream.Write(BitConverter.GetBytes((ulong)padded));
        _file.Stream.Write(ms.GetBuffer().AsSpan(0, len));
        for (int i = len; i < padded; i++) _file.Stream.WriteByte((byte)' ');
        _next = 0;
        while (_next < _tensors.Count && _tensors[_next].Entry.ByteSize == 0) _next++;
    }

    /// <summary>Discards the temporary file unless committed.</summary>
    public void Dispose() => _file?.Dispose();
}
