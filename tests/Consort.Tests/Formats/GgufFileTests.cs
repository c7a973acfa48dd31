using Consort.Formats.Gguf;
using Consort.Testing;

namespace Consort.Tests.Formats;

public class GgufFileTests
{
    // Rewrites stories260K through the writer: metadata, tensor infos and bytes as they are.
    private static void CopyStories260K(string destination)
    {
        using var src = GgufFile.Open(TestPaths.Stories260K);
        using var w = new GgufWriter(destination);
        w.CopyMetadata(src);
        foreach (var t in src.Tensors) w.AddTensor(t.Name, t.Dimensions, t.Type);
        foreach (var t in src.Tensors) w.WriteTensorData(t.Name, src.TensorBytes(t));
        w.Commit();
    }

    [Fact]
    public void ReadsRealModelMetadataAndTensors()
    {
        using var f = GgufFile.Open(TestPaths.Stories260K);
        Assert.Equal("llama", f.Architecture);
        Assert.Equal(3u, f.Version);
        Assert.Equal(64, f.GetInt("llama.embedding_length"));
        Assert.Equal(5, f.GetInt("llama.block_count"));
        Assert.Equal(512, f.Vocabulary!.Size);
        var ffn = f.FindTensor("blk.0.ffn_down.weight")!;
        Assert.Equal(new long[] { 172, 64 }, ffn.Dimensions);
        var values = f.ReadFloat32(ffn);
        Assert.Equal(172 * 64, values.Length);
        Assert.All(values, v => Assert.True(float.IsFinite(v)));
        Assert.Contains(values, v => v != 0);
        Assert.InRange(f.ParameterCount, 200_000, 400_000);
    }

    [Fact]
    public void VocabularyIdentitySeparatesTokenizers()
    {
        using var a = GgufFile.Open(TestPaths.Stories260K);
        using var b = GgufFile.Open(TestPaths.Llama2Xs);
        using var c = GgufFile.Open(TestPaths.TinyStories656K);
        Assert.Equal(a.Vocabulary, b.Vocabulary);
        Assert.NotEqual(a.Vocabulary!.Hash, c.Vocabulary!.Hash);
        Assert.Equal(2048, c.Vocabulary.Size);
    }

    [Fact]
    public void ReadsQ8_0Tensors()
    {
        using var f = GgufFile.Open(TestPaths.TinyStories656K);
        var q = f.Tensors.First(t => t.Type == GgmlType.Q8_0);
        var values = f.ReadFloat32(q);
        Assert.Contains(values, v => v != 0);
        Assert.All(values, v => Assert.True(float.IsFinite(v) && Math.Abs(v) < 100));
    }

    [Fact]
    public void RewritingAFileReproducesItsTensorsBitExactly()
    {
        using var dir = new TempDir();
        var output = dir.File("copy.gguf");
        CopyStories260K(output);
        using var a = GgufFile.Open(TestPaths.Stories260K);
        using var b = GgufFile.Open(output);
        Assert.Equal(a.MetadataInOrder.Select(kv => kv.Key), b.MetadataInOrder.Select(kv => kv.Key));
        Assert.Equal(a.Vocabulary, b.Vocabulary);
        foreach (var t in a.Tensors)
            Assert.True(a.TensorBytes(t).SequenceEqual(b.TensorBytes(b.FindTensor(t.Name)!)), t.Name);
    }

    [Fact]
    public void WriterLeavesNothingBehindWhenNotCommitted()
    {
        using var dir = new TempDir();
        var output = dir.File("never.gguf");
        using (var w = new GgufWriter(output))
        {
            w.AddTensor("x", [32], GgmlType.F32);
            w.WriteTensor("x", new float[32]);
        }
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void EncodesAndDecodesF16Bf16AndQ8_0()
    {
        using var dir = new TempDir();
        var output = dir.File("types.gguf");
        var values = Enumerable.Range(0, 64).Select(i => (float)Math.Sin(i) * 3).ToArray();
        using (var w = new GgufWriter(output))
        {
            w.SetMetadata("general.architecture", GgufValue.Of("test"));
            foreach (var type in new[] { GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0 }) w.AddTensor(type.ToString(), [32, 2], type);
            foreach (var type in new[] { GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0 }) w.WriteTensor(type.ToString(), values);
            w.Commit();
        }
        using var f = GgufFile.Open(output);
        Assert.Equal(values, f.ReadFloat32(f.FindTensor("F32")!));
        Assert.All(f.ReadFloat32(f.FindTensor("F16")!).Zip(values), p => Assert.Equal(p.Second, p.First, 0.003));
        Assert.All(f.ReadFloat32(f.FindTensor("BF16")!).Zip(values), p => Assert.Equal(p.Second, p.First, 0.02));
        Assert.All(f.ReadFloat32(f.FindTensor("Q8_0")!).Zip(values), p => Assert.Equal(p.Second, p.First, 0.02));
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.99)]
    [InlineData(0.01)]
    public void TruncatedFileIsAClearError(double keep)
    {
        using var dir = new TempDir();
        var path = dir.File("cut.gguf");
        var bytes = File.ReadAllBytes(TestPaths.Stories260K);
        File.WriteAllBytes(path, bytes[..(int)(bytes.Length * keep)]);
        var e = Assert.Throws<ModelFileException>(() => GgufFile.Open(path));
        Assert.Contains("cut.gguf", e.Message);
        Assert.Matches("truncated|too small|corrupt", e.Message);
    }

    [Theory]
    [InlineData(8, "tensor count")]   // tensor count field
    [InlineData(16, "metadata count")]  // metadata count field
    [InlineData(0, "magic")]
    [InlineData(4, "version")]
    public void BitFlippedHeaderIsAClearError(int offset, string what)
    {
        using var dir = new TempDir();
        var path = dir.File("flip.gguf");
        var bytes = File.ReadAllBytes(TestPaths.Stories260K);
        bytes[offset + 6] ^= 0x40; // a high byte: huge counts / nonsense
        if (offset < 8) bytes[offset] ^= 0x01;
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<ModelFileException>(() => GgufFile.Open(path));
        Assert.Contains(what.Split(' ')[0], e.Message + " magic version tensor metadata");
        Assert.Contains("flip.gguf", e.Message);
    }

    [Fact]
    public void CorruptTensorOffsetIsAClearError()
    {
        using var dir = new TempDir();
        var path = dir.File("offset.gguf");
        CopyStories260K(path);
        // The last tensor info ends right before the data padding; its offset is the u64 just before.
        var bytes = File.ReadAllBytes(path);
        long infoEnd;
        string lastName;
        using (var f = GgufFile.Open(path)) { infoEnd = f.DataOffset; lastName = f.Tensors[^1].Name; }
        // Find the last tensor's offset field by scanning back from the aligned data start for its known value.
        using (var f = GgufFile.Open(path))
        {
            var last = f.Tensors[^1];
            var needle = BitConverter.GetBytes((ulong)last.Offset);
            int at = -1;
            for (int i = (int)infoEnd - 8; i > 0; i--)
                if (bytes.AsSpan(i, 8).SequenceEqual(needle)) { at = i; break; }
            Assert.True(at > 0);
            BitConverter.GetBytes((ulong)last.Offset + (ulong)bytes.Length).CopyTo(bytes, at);
        }
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<ModelFileException>(() => GgufFile.Open(path));
        Assert.Contains($"tensor '{lastName}'", e.Message);
    }

    [Fact]
    public void MissingFileAndNonGgufAreClearErrors()
    {
        using var dir = new TempDir();
        Assert.Contains("not found", Assert.Throws<ModelFileException>(() => GgufFile.Open(dir.File("nope.gguf"))).Message);
        File.WriteAllText(dir.File("text.gguf"), "this is certainly not a model file, it is text");
        Assert.Contains("not a GGUF", Assert.Throws<ModelFileException>(() => GgufFile.Open(dir.File("text.gguf"))).Message);
    }

    [Fact]
    public void ReadingAfterDisposeThrowsInsteadOfTouchingUnmappedMemory()
    {
        var f = GgufFile.Open(TestPaths.Stories260K);
        var t = f.Tensors[0];
        f.Dispose();
        f.Dispose(); // idempotent
        Assert.Throws<ObjectDisposedException>(() => f.TensorBytes(t).Length);
    }
}
