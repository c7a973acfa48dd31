using System.IO.MemoryMappedFiles;
using System.Text;
using System.Text.Json;
using Consort.Formats.Gguf;

namespace Consort.Formats.Safetensors;

/// <summary>
/// One .safetensors file, memory-mapped and validated on open: header length, JSON, dtypes, shapes, and every
/// tensor's data offsets (inside the data section, matching its size, not overlapping). Errors are
/// <see cref="ModelFileException"/>s naming the file and the tensor.
/// </summary>
public sealed unsafe class SafetensorsFile : ITensorSource
{
    /// <summary>Largest header accepted (the format's own limit is 100 MB).</summary>
    public const long MaxHeaderSize = 100_000_000;

    private readonly ReadOnlyMapping _mapping;
    private readonly Dictionary<string, (TensorEntry Entry, long Begin)> _byName;

    private SafetensorsFile(string path, ReadOnlyMapping mapping, long dataStart,
        List<(TensorEntry Entry, long Begin)> tensors, Dictionary<string, string> metadata)
    {
        Path = path; _mapping = mapping; DataStart = dataStart; Metadata = metadata;
        Tensors = tensors.Select(t => t.Entry).ToList();
        _byName = tensors.ToDictionary(t => t.Entry.Name);
    }

    /// <inheritdoc />
    public string Path { get; }
    /// <inheritdoc />
    public string Format => "safetensors";
    /// <summary>Absolute offset of the data section (8 + header length).</summary>
    public long DataStart { get; }
    /// <summary>The header's __metadata__ strings.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }
    /// <inheritdoc />
    public IReadOnlyList<TensorEntry> Tensors { get; }
    /// <inheritdoc />
    public TensorEntry? Find(string name) => _byName.TryGetValue(name, out var e) ? e.Entry : null;

    /// <inheritdoc />
    public ReadOnlySpan<byte> GetBytes(TensorEntry tensor, long offset, int length)
    {
        var (entry, begin) = _byName[tensor.Name];
        if (offset < 0 || length < 0 || offset + length > entry.ByteSize) throw new ArgumentOutOfRangeException(nameof(offset), $"slice outside tensor '{tensor.Name}'");
        return new ReadOnlySpan<byte>(_mapping.Pointer + DataStart + begin + offset, length);
    }

    /// <summary>Opens and validates <paramref name="path"/>.</summary>
    /// <exception cref="ModelFileException">Missing, truncated or corrupt file.</exception>
    public static SafetensorsFile Open(string path)
    {
        path = System.IO.Path.GetFullPath(path);
        if (Directory.Exists(path)) throw new ModelFileException(path, "is a folder, not a .safetensors file");
        if (!File.Exists(path)) throw new ModelFileException(path, "file not found");
        long length = Limits.ResolvedFile(path).Length;
        if (length < 8) throw new ModelFileException(path, $"too small to be safetensors ({length} bytes; the 8-byte header length is missing)");
        long headerLen;
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
        {
            Span<byte> b8 = stackalloc byte[8];
            fs.ReadExactly(b8);
            headerLen = (long)BitConverter.ToUInt64(b8);
            if (headerLen > MaxHeaderSize || headerLen < 0)
                throw new ModelFileException(path, $"header length {(ulong)headerLen} is implausible (corrupt or not safetensors)");
            if (8 + headerLen > length)
                throw new ModelFileException(path, $"truncated header: it declares {headerLen} bytes but the file has only {length - 8} after the length field");
        }

        var mapping = ReadOnlyMapping.Open(path);
        try
        {
            var header = new ReadOnlySpan<byte>(mapping.Pointer + 8, (int)headerLen);
            var (tensors, metadata) = ParseHeader(path, header, length - 8 - headerLen);
            return new SafetensorsFile(path, mapping, 8 + headerLen, tensors, metadata);
        }
        catch
        {
            mapping.Dispose();
            throw;
        }
    }

    private static (List<(TensorEntry, long)>, Dictionary<string, string>) ParseHeader(string path, ReadOnlySpan<byte> header, long dataLength)
    {
        if (!System.Text.Unicode.Utf8.IsValid(header)) throw new ModelFileException(path, "header is not valid UTF-8; the file is corrupt or not safetensors");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header.ToArray(), SafeJson.Options);
        }
        catch (JsonException e)
        {
            throw new ModelFileException(path, $"header is not valid JSON ({SafeJson.Reason(e)}); the file is corrupt or truncated", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new ModelFileException(path, "header is not a JSON object");
            var metadata = new Dictionary<string, string>();
            var tensors = new List<(TensorEntry Entry, long Begin)>();
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind == JsonValueKind.Object)
                        foreach (var m in prop.Value.EnumerateObject()) metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                    continue;
                }
                tensors.Add(ParseTensor(path, prop.Name, prop.Value, dataLength));
            }
            // Overlaps mean two tensors share bytes: corruption (or a hand-made file we should not trust).
            var sorted = tensors.OrderBy(t => t.Begin).ToList();
            for (int i = 1; i < sorted.Count; i++)
                if (sorted[i].Begin < sorted[i - 1].Begin + sorted[i - 1].Entry.ByteSize)
                    throw new ModelFileException(path, $"corrupt: tensors {MessageText.Quote(sorted[i - 1].Entry.Name)} and {MessageText.Quote(sorted[i].Entry.Name)} overlap");
            return (tensors, metadata);
        }
    }

    private static (TensorEntry, long) ParseTensor(string path, string name, JsonElement e, long dataLength)
    {
        string Bad(string problem) => $"tensor {MessageText.Quote(name)}: {problem}";
        if (e.ValueKind != JsonValueKind.Object) throw new ModelFileException(path, Bad("header entry is not an object"));
        if (!e.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String) throw new ModelFileException(path, Bad("missing dtype"));
        var type = SafetensorsDType.Parse(dt.GetString()!) ?? throw new ModelFileException(path, Bad($"dtype {MessageText.Quote(dt.GetString())} is not supported (F32, F16, BF16, F64, I8-I64 are)"));
        if (!e.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array) throw new ModelFileException(path, Bad("missing shape"));
        var shape = new long[sh.GetArrayLength()];
        int k = 0;
        long elements = 1;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long v) || v < 0) throw new ModelFileException(path, Bad($"bad shape {MessageText.Escape(sh.GetRawText(), 80)}"));
            shape[k++] = v;
            elements = v == 0 ? 0 : (elements > long.MaxValue / v ? throw new ModelFileException(path, Bad($"shape {MessageText.Escape(sh.GetRawText(), 80)} overflows")) : elements * v);
        }
        if (!e.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw new ModelFileException(path, Bad("missing data_offsets [begin, end]"));
        if (off[0].ValueKind != JsonValueKind.Number || off[1].ValueKind != JsonValueKind.Number
            || !off[0].TryGetInt64(out long begin) || !off[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw new ModelFileException(path, Bad($"bad data_offsets {MessageText.Escape(off.GetRawText(), 80)}"));
        if (end > dataLength)
            throw new ModelFileException(path, Bad($"data_offsets [{begin}, {end}] lie outside the data section ({dataLength} bytes): the file is truncated or corrupt"));
        long expected = GgmlTypes.ByteSize(type, elements);
        if (end - begin != expected)
            throw new ModelFileException(path, Bad($"data_offsets [{begin}, {end}] hold {end - begin} bytes but shape {MessageText.Escape(sh.GetRawText(), 80)} of {dt.GetString()} needs {expected}"));
        return (new TensorEntry(name, shape, type, expected), begin);
    }


    /// <inheritdoc />
    public void Dispose()
    {
        _mapping.Dispose();
    }
}
