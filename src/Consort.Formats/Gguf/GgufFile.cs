using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace Consort.Formats.Gguf;

/// <summary>
/// A GGUF file (v2/v3), memory-mapped and fully validated in managed code on open: magic, version,
/// counts, every string and array length, tensor dimensions, types, offsets and sizes within the file.
/// llama.cpp aborts the process on many malformed files; opening through this class first turns
/// that into a <see cref="ModelFileException"/>.
/// </summary>
public sealed unsafe class GgufFile : IDisposable
{
    /// <summary>"GGUF" little-endian.</summary>
    public const uint Magic = 0x46554747;
    private const int MaxDims = 4;
    private const ulong MaxStringLength = 1 << 30;

    private readonly ReadOnlyMapping _mapping;
    private readonly Dictionary<string, GgufValue> _metadata;
    private readonly Dictionary<string, GgufTensorInfo> _byName;
    private VocabularyIdentity? _vocabulary;
    private bool _vocabularyRead;

    private GgufFile(string path, ReadOnlyMapping mapping, long length,
        uint version, List<KeyValuePair<string, GgufValue>> metadata, List<GgufTensorInfo> tensors, long dataOffset, int alignment)
    {
        Path = path; _mapping = mapping; Length = length; Version = version;
        MetadataInOrder = metadata; _metadata = new Dictionary<string, GgufValue>(metadata);
        Tensors = tensors; _byName = tensors.ToDictionary(t => t.Name);
        DataOffset = dataOffset; Alignment = alignment;
    }

    /// <summary>Full path of the file.</summary>
    public string Path { get; }
    /// <summary>File length in bytes.</summary>
    public long Length { get; }
    /// <summary>GGUF version (2 or 3).</summary>
    public uint Version { get; }
    /// <summary>Metadata in file order.</summary>
    public IReadOnlyList<KeyValuePair<string, GgufValue>> MetadataInOrder { get; }
    /// <summary>Metadata by key.</summary>
    public IReadOnlyDictionary<string, GgufValue> Metadata => _metadata;
    /// <summary>Tensors in file order.</summary>
    public IReadOnlyList<GgufTensorInfo> Tensors { get; }
    /// <summary>Absolute offset of the tensor data section.</summary>
    public long DataOffset { get; }
    /// <summary>Data alignment (general.alignment, default 32).</summary>
    public int Alignment { get; }
    /// <summary>Id of the first token whose text is not valid UTF-8 (-1 when all are valid).</summary>
    public int FirstInvalidUtf8Token { get; private init; } = -1;

    /// <summary>general.architecture, e.g. "llama".</summary>
    public string? Architecture => GetString(GgufKeys.General.Architecture);
    /// <summary>general.type ("model" or "adapter"), when present.</summary>
    public string? FileKind => GetString(GgufKeys.General.Type);
    /// <summary>Total number of tensor elements (parameters).</summary>
    public long ParameterCount => Tensors.Sum(t => t.ElementCount);
    /// <summary>{arch}.context_length, or 0.</summary>
    public int ContextLength => Architecture is { } a && GetInt(GgufKeys.Llm.ContextLength(a)) is { } n and > 0 and <= int.MaxValue ? (int)n : 0;

    /// <summary>Opens and validates <paramref name="path"/>.</summary>
    /// <exception cref="ModelFileException">The file is missing, truncated, corrupt or not GGUF.</exception>
    public static GgufFile Open(string path)
    {
        path = System.IO.Path.GetFullPath(path);
        if (Directory.Exists(path)) throw new ModelFileException(path, "is a folder, not a GGUF file");
        if (!File.Exists(path)) throw new ModelFileException(path, "file not found");
        long length = Limits.ResolvedFile(path).Length;
        if (length < 24) throw new ModelFileException(path, $"too small to be GGUF ({length} bytes)");
        var mapping = ReadOnlyMapping.Open(path);
        try
        {
            return Parse(path, mapping, length);
        }
        catch
        {
            mapping.Dispose();
            throw;
        }
    }

    private static GgufFile Parse(string path, ReadOnlyMapping mapping, long length)
    {
        byte* p = mapping.Pointer;
        var r = new Cursor(path, p, length);
        uint magic = r.U32("magic");
        if (magic != Magic) throw new ModelFileException(path, $"not a GGUF file (magic 0x{magic:X8}, expected 'GGUF')");
        uint version = r.U32("version");
        if (version is not (2 or 3)) throw new ModelFileException(path, $"unsupported GGUF version {version} (supported: 2, 3)");
        ulong tensorCount = r.U64("tensor count"), kvCount = r.U64("metadata count");
        // Each entry takes at least a few bytes: counts larger than the file are corruption, not big models.
        if (tensorCount > (ulong)length / 24) throw new ModelFileException(path, $"tensor count {tensorCount} is impossible for a {length}-byte file (corrupt header)");
        if (kvCount > (ulong)length / 12) throw new ModelFileException(path, $"metadata count {kvCount} is impossible for a {length}-byte file (corrupt header)");

        var metadata = new List<KeyValuePair<string, GgufValue>>((int)kvCount);
        var seen = new HashSet<string>();
        for (ulong i = 0; i < kvCount; i++)
        {
            string key = r.String($"metadata key #{i}");
            if (!seen.Add(key)) throw new ModelFileException(path, $"duplicate metadata key {MessageText.Quote(key)}");
            string shownKey = MessageText.Quote(key);
            var type = (GgufValueType)r.U32($"type of {shownKey}");
            metadata.Add(new(key, r.Value(type, shownKey, checkUtf8: key == GgufKeys.Tokenizer.Tokens)));
        }

        int alignment = 32;
        var alignValue = metadata.FirstOrDefault(kv => kv.Key == GgufKeys.General.Alignment).Value;
        if (alignValue is not null)
        {
            // gguf.cpp reads it with gguf_get_val_u32, which asserts (kills the process) on any other type.
            if (alignValue.Type != GgufValueType.UInt32)
                throw new ModelFileException(path, $"{GgufKeys.General.Alignment} is stored as {GgufKeys.Name(alignValue.Type)}; GGUF requires u32 (llama.cpp aborts on other types)");
            long a = alignValue.AsInt64();
            if (a <= 0 || a > 1 << 20 || (a & (a - 1)) != 0) throw new ModelFileException(path, $"{GgufKeys.General.Alignment} {a} is not a power of two up to 2^20");
            alignment = (int)a;
        }

        var tensors = new List<GgufTensorInfo>((int)tensorCount);
        var names = new HashSet<string>();
        for (ulong i = 0; i < tensorCount; i++)
        {
            string name = r.String($"tensor name #{i}");
            string shown = MessageText.Quote(name);
            if (!names.Add(name)) throw new ModelFileException(path, $"duplicate tensor {shown}");
            uint nDims = r.U32($"dimension count of tensor {shown}");
            if (nDims is 0 or > MaxDims) throw new ModelFileException(path, $"tensor {shown} has {nDims} dimensions (1..{MaxDims} allowed)");
            var dims = new long[nDims];
            long elements = 1;
            for (int d = 0; d < nDims; d++)
            {
                ulong n = r.U64($"dimension {d} of tensor {shown}");
                if (n == 0 || n > (ulong)length * 8) throw new ModelFileException(path, $"tensor {shown} has impossible dimension {d} = {n}");
                dims[d] = (long)n;
                elements = elements > long.MaxValue / (long)n ? throw new ModelFileException(path, $"tensor {shown} shape overflows") : elements * (long)n;
            }
            var type = (GgmlType)r.U32($"type of tensor {shown}");
            if (!GgmlTypes.IsKnown(type)) throw new ModelFileException(path, $"tensor {shown} has unknown type id {(uint)type}");
            ulong offset = r.U64($"offset of tensor {shown}");
            long bytes = GgmlTypes.ByteSize(type, elements);
            if (bytes < 0 || dims[0] % GgmlTypes.BlockSize(type) != 0)
                throw new ModelFileException(path, $"tensor {shown} row of {dims[0]} elements does not fill whole {type} blocks of {GgmlTypes.BlockSize(type)}");
            if (offset % (ulong)alignment != 0) throw new ModelFileException(path, $"tensor {shown} offset {offset} is not aligned to {alignment}");
            tensors.Add(new GgufTensorInfo(name, dims, type, (long)offset, bytes));
        }

        long dataOffset = (r.Position + alignment - 1) / alignment * alignment;
        if (tensorCount > 0 && dataOffset > length) throw new ModelFileException(path, $"truncated: tensor data should start at byte {dataOffset} but the file has {length} bytes");
        foreach (var t in tensors)
        {
            long end = dataOffset + t.Offset + t.ByteSize;
            if (t.Offset > length || end > length || end < 0)
                throw new ModelFileException(path, $"truncated or corrupt: tensor {MessageText.Quote(t.Name)} ({t.Type} {t.ShapeText}) needs bytes {dataOffset + t.Offset}..{end} but the file has {length} bytes");
        }
        // Overlapping tensors mean a corrupt offset table.
        var sorted = tensors.OrderBy(t => t.Offset).ToList();
        for (int i = 1; i < sorted.Count; i++)
            if (sorted[i].Offset < sorted[i - 1].Offset + sorted[i - 1].ByteSize)
                throw new ModelFileException(path, $"corrupt: tensors {MessageText.Quote(sorted[i - 1].Name)} and {MessageText.Quote(sorted[i].Name)} overlap");

        return new GgufFile(path, mapping, length, version, metadata, tensors, dataOffset, alignment) { FirstInvalidUtf8Token = r.FirstInvalidUtf8 };
    }

    /// <summary>Looks up a tensor by name.</summary>
    public GgufTensorInfo? FindTensor(string name) => _byName.GetValueOrDefault(name);

    /// <summary>The raw bytes of a tensor, straight from the mapping (valid until dispose).</summary>
    public ReadOnlySpan<byte> TensorBytes(GgufTensorInfo tensor)
    {
        return new ReadOnlySpan<byte>(_mapping.Pointer + DataOffset + tensor.Offset, checked((int)tensor.ByteSize));
    }

    /// <summary>A slice of a tensor's raw bytes (for tensors over 2 GB, read in chunks).</summary>
    public ReadOnlySpan<byte> TensorBytes(GgufTensorInfo tensor, long offset, int length)
    {
        if (offset < 0 || length < 0 || offset + length > tensor.ByteSize) throw new ArgumentOutOfRangeException(nameof(offset), $"slice [{offset}, {offset + length}) outside tensor '{tensor.Name}' ({tensor.ByteSize} bytes)");
        return new ReadOnlySpan<byte>(_mapping.Pointer + DataOffset + tensor.Offset + offset, length);
    }

    /// <summary>Reads a tensor as F32 (F32, F16, BF16 and Q8_0 supported), in GGUF element order.</summary>
    public float[] ReadFloat32(GgufTensorInfo tensor)
    {
        var result = new float[tensor.ElementCount];
        ReadFloat32(tensor, result);
        return result;
    }

    /// <summary>Reads a tensor as F32 into <paramref name="destination"/> (length = element count).</summary>
    public void ReadFloat32(GgufTensorInfo tensor, Span<float> destination)
    {
        if (destination.Length != tensor.ElementCount) throw new ArgumentException($"destination has {destination.Length} elements, tensor '{tensor.Name}' has {tensor.ElementCount}");
        try
        {
            TensorCodec.Decode(tensor.Type, TensorBytes(tensor), destination);
        }
        catch (NotSupportedException e)
        {
            throw new ModelFileException(Path, $"tensor '{tensor.Name}': {e.Message}", e);
        }
    }

    /// <summary>A metadata value, or null.</summary>
    public GgufValue? Get(string key) => _metadata.GetValueOrDefault(key);
    /// <summary>A string value, or null when absent or not a string.</summary>
    public string? GetString(string key) => Get(key)?.Value as string;
    /// <summary>An integer value, or null.</summary>
    public long? GetInt(string key) => Get(key) is { IsArray: false, Type: not GgufValueType.String and not GgufValueType.Float32 and not GgufValueType.Float64 } v
        ? v.Value is ulong u && u > long.MaxValue ? long.MaxValue : v.AsInt64() // clamped: range checks then name it
        : null;
    /// <summary>A floating value, or null.</summary>
    public double? GetFloat(string key) => Get(key) is { IsArray: false, Type: not GgufValueType.String } v ? v.AsDouble() : null;
    /// <summary>The token list (tokenizer.ggml.tokens), or null.</summary>
    public string[]? Tokens => Get(GgufKeys.Tokenizer.Tokens)?.Value as string[];

    /// <summary>The tokenizer's identity: SHA-256 over the token texts in id order (null without a tokenizer).</summary>
    public VocabularyIdentity? Vocabulary
    {
        get
        {
            if (_vocabularyRead) return _vocabulary;
            _vocabularyRead = true;
            var tokens = Tokens;
            if (tokens is null) return null;
            _vocabulary = new VocabularyIdentity(tokens.Length, HashTokens(tokens), GetString(GgufKeys.Tokenizer.Model));
            return _vocabulary;
        }
    }

    /// <summary>SHA-256 over token texts (each followed by a 0 byte) as lowercase hex.</summary>
    public static string HashTokens(IEnumerable<string> tokens)
    {
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> zero = [0];
        foreach (var t in tokens)
        {
            sha.AppendData(Encoding.UTF8.GetBytes(t));
            sha.AppendData(zero);
        }
        return Convert.ToHexStringLower(sha.GetHashAndReset());
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _mapping.Dispose();
    }

    /// <summary>Bounds-checked little-endian reader over the mapping.</summary>
    private sealed class Cursor(string path, byte* p, long length)
    {
        public long Position { get; private set; }

        private byte* Take(long n, string what)
        {
            if (n < 0 || Position + n > length)
                throw new ModelFileException(path, $"truncated: {what} at byte {Position} needs {n} bytes but the file has {length}");
            var at = p + Position;
            Position += n;
            return at;
        }

        public uint U32(string what) => *(uint*)Take(4, what);
        public ulong U64(string what) => *(ulong*)Take(8, what);

        public string String(string what)
        {
            ulong n = U64(what + " length");
            if (n > MaxStringLength || (long)n > length - Position)
                throw new ModelFileException(path, $"corrupt: {what} claims {n} bytes at byte {Position} (file has {length})");
            var bytes = Take((long)n, what);
            return Encoding.UTF8.GetString(bytes, (int)n);
        }

        /// <summary>Index of the first string of the last array read with <c>checkUtf8</c> that is not valid UTF-8, or -1.</summary>
        public int FirstInvalidUtf8 { get; private set; } = -1;

        /// <summary>Reads a value; <paramref name="key"/> is the key as messages show it.</summary>
        public GgufValue Value(GgufValueType type, string key, bool checkUtf8 = false)
        {
            if (type != GgufValueType.Array) return new GgufValue(type, Scalar(type, key));
            var elem = (GgufValueType)U32($"element type of {key}");
            if (elem == GgufValueType.Array) throw new ModelFileException(path, $"metadata {key}: nested arrays are not supported");
            ulong count = U64($"length of {key}");
            long minSize = elem == GgufValueType.String ? 8 : ScalarSize(elem, key);
            if (count > (ulong)((length - Position) / minSize))
                throw new ModelFileException(path, $"corrupt: metadata array {key} claims {count} elements, more than the file can hold");
            int n = (int)count;
            Array arr = elem switch
            {
                GgufValueType.String => ReadStrings(n, key, checkUtf8),
                GgufValueType.UInt8 => ReadArray<byte>(n, key), GgufValueType.Int8 => ReadArray<sbyte>(n, key),
                GgufValueType.UInt16 => ReadArray<ushort>(n, key), GgufValueType.Int16 => ReadArray<short>(n, key),
                GgufValueType.UInt32 => ReadArray<uint>(n, key), GgufValueType.Int32 => ReadArray<int>(n, key),
                GgufValueType.Float32 => ReadArray<float>(n, key), GgufValueType.Bool => ReadArray<byte>(n, key).Select(b => b != 0).ToArray(),
                GgufValueType.UInt64 => ReadArray<ulong>(n, key), GgufValueType.Int64 => ReadArray<long>(n, key),
                GgufValueType.Float64 => ReadArray<double>(n, key),
                _ => throw new ModelFileException(path, $"metadata {key} has unknown element type {(uint)elem}"),
            };
            return new GgufValue(GgufValueType.Array, arr, elem);
        }

        private string[] ReadStrings(int n, string key, bool checkUtf8)
        {
            var s = new string[n];
            for (int i = 0; i < n; i++)
            {
                long start = Position;
                s[i] = String($"element {i} of {key}");
                // Decoding replaces invalid bytes, so two different corrupt tokens could look equal: remember the first.
                if (checkUtf8 && FirstInvalidUtf8 < 0 && !System.Text.Unicode.Utf8.IsValid(new ReadOnlySpan<byte>(p + start + 8, (int)(Position - start - 8))))
                    FirstInvalidUtf8 = i;
            }
            return s;
        }

        private T[] ReadArray<T>(int n, string key) where T : unmanaged
        {
            var src = Take((long)n * sizeof(T), $"array {key}");
            var result = new T[n];
            new ReadOnlySpan<T>(src, n).CopyTo(result);
            return result;
        }

        private long ScalarSize(GgufValueType t, string key) => t switch
        {
            GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
            GgufValueType.UInt16 or GgufValueType.Int16 => 2,
            GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
            GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 => 8,
            _ => throw new ModelFileException(path, $"metadata {key} has unknown value type {(uint)t}"),
        };

        private object Scalar(GgufValueType t, string key)
        {
            var at = Take(t == GgufValueType.String ? 0 : ScalarSize(t, key), $"value of {key}");
            return t switch
            {
                GgufValueType.String => String($"value of {key}"),
                GgufValueType.UInt8 => *at, GgufValueType.Int8 => *(sbyte*)at, GgufValueType.Bool => *at != 0,
                GgufValueType.UInt16 => *(ushort*)at, GgufValueType.Int16 => *(short*)at,
                GgufValueType.UInt32 => *(uint*)at, GgufValueType.Int32 => *(int*)at, GgufValueType.Float32 => *(float*)at,
                GgufValueType.UInt64 => *(ulong*)at, GgufValueType.Int64 => *(long*)at, GgufValueType.Float64 => *(double*)at,
                _ => throw new ModelFileException(path, $"metadata {key} has unknown value type {(uint)t}"),
            };
        }
    }
}
