using Consort.Formats.Gguf;

namespace Consort.Formats;

/// <summary>One tensor of a model file, described the same way for every format.</summary>
/// <param name="Name">Name as the file stores it (GGUF or Hugging Face naming).</param>
/// <param name="Shape">Dimensions outermost-first (PyTorch order; a GGUF tensor's dims reversed).</param>
/// <param name="Type">Element type (safetensors dtypes map onto the ggml ids).</param>
/// <param name="ByteSize">Size of the stored data.</param>
public sealed record TensorEntry(string Name, long[] Shape, GgmlType Type, long ByteSize)
{
    /// <summary>Number of elements.</summary>
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
    /// <summary>Shape for messages, outermost-first: e.g. [64, 172].</summary>
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
    /// <summary>True when the shapes are equal.</summary>
    public bool SameShape(TensorEntry other) => Shape.AsSpan().SequenceEqual(other.Shape);
}

/// <summary>
/// A memory-mapped model file (or set of shards) whose tensors can be read in chunks, so callers never
/// need a whole tensor in memory.
/// </summary>
public interface ITensorSource : IDisposable
{
    /// <summary>File or folder the tensors come from.</summary>
    string Path { get; }
    /// <summary>"gguf" or "safetensors".</summary>
    string Format { get; }
    /// <summary>Tensors in file order.</summary>
    IReadOnlyList<TensorEntry> Tensors { get; }
    /// <summary>Looks a tensor up by name.</summary>
    TensorEntry? Find(string name);
    /// <summary>Raw bytes <paramref name="offset"/>..+<paramref name="length"/> of a tensor (valid until dispose).</summary>
    ReadOnlySpan<byte> GetBytes(TensorEntry tensor, long offset, int length);
}

/// <summary>Helpers over <see cref="ITensorSource"/>.</summary>
public static class TensorSources
{
    /// <summary>
    /// Opens a GGUF file, a .safetensors file, a model.safetensors.index.json, or a folder holding either
    /// safetensors form.
    /// </summary>
    public static ITensorSource Open(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        if (Directory.Exists(full) || full.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) || full.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
            return Safetensors.SafetensorsModel.Open(full);
        if (!File.Exists(full)) throw new ModelFileException(full, "file not found");
        return new GgufTensorSource(GgufFile.Open(full));
    }

    /// <summary>The element at which a read chunk must start so quantized blocks are not split.</summary>
    public static int BlockSize(TensorEntry t) => GgmlTypes.BlockSize(t.Type);

    /// <summary>Decodes elements [<paramref name="start"/>, start + destination.Length) of a tensor as F32.</summary>
    public static void ReadFloat32(this ITensorSource source, TensorEntry tensor, long start, Span<float> destination)
    {
        int block = GgmlTypes.BlockSize(tensor.Type);
        if (start % block != 0 || (destination.Length % block != 0 && start + destination.Length != tensor.ElementCount))
            throw new ArgumentException($"chunk of tensor '{tensor.Name}' does not align to {tensor.Type} blocks of {block}");
        long byteStart = GgmlTypes.ByteSize(tensor.Type, start);
        long byteLen = GgmlTypes.ByteSize(tensor.Type, destination.Length);
        try
        {
            TensorCodec.Decode(tensor.Type, source.GetBytes(tensor, byteStart, checked((int)byteLen)), destination);
        }
        catch (NotSupportedException e)
        {
            throw new ModelFileException(source.Path, $"tensor '{tensor.Name}': {e.Message}", e);
        }
    }

    /// <summary>Reads a whole tensor as F32 (small tensors only; large ones should be read in chunks).</summary>
    public static float[] ReadFloat32(this ITensorSource source, TensorEntry tensor)
    {
        var result = new float[tensor.ElementCount];
        const int chunk = 1 << 22;
        for (long s = 0; s < result.LongLength; s += chunk)
            source.ReadFloat32(tensor, s, result.AsSpan((int)s, (int)Math.Min(chunk, result.LongLength - s)));
        return result;
    }

    /// <summary>Reads a whole tensor as F32 by name; a missing tensor is a <see cref="ModelFileException"/>.</summary>
    public static float[] ReadFloat32(this ITensorSource source, string name) =>
        source.ReadFloat32(source.Find(name) ?? throw new ModelFileException(source.Path, $"tensor '{name}' not found"));
}

/// <summary>A <see cref="GgufFile"/> seen as an <see cref="ITensorSource"/> (shapes reversed to outermost-first).</summary>
public sealed class GgufTensorSource : ITensorSource
{
    private readonly Dictionary<string, (TensorEntry Entry, GgufTensorInfo Info)> _byName;

    /// <summary>Wraps (and owns) <paramref name="file"/>.</summary>
    public GgufTensorSource(GgufFile file)
    {
        File = file;
        Tensors = file.Tensors.Select(t => new TensorEntry(t.Name, t.Dimensions.Reverse().ToArray(), t.Type, t.ByteSize)).ToList();
        _byName = new();
        for (int i = 0; i < Tensors.Count; i++) _byName[Tensors[i].Name] = (Tensors[i], file.Tensors[i]);
    }

    /// <summary>The GGUF file (metadata, tokenizer).</summary>
    public GgufFile File { get; }
    /// <inheritdoc />
    public string Path => File.Path;
    /// <inheritdoc />
    public string Format => "gguf";
    /// <inheritdoc />
    public IReadOnlyList<TensorEntry> Tensors { get; }
    /// <inheritdoc />
    public TensorEntry? Find(string name) => _byName.TryGetValue(name, out var e) ? e.Entry : null;
    /// <inheritdoc />
    public ReadOnlySpan<byte> GetBytes(TensorEntry tensor, long offset, int length) => File.TensorBytes(_byName[tensor.Name].Info, offset, length);
    /// <inheritdoc />
    public void Dispose() => File.Dispose();
}
