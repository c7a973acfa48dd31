using Consort.Formats.Gguf;
using Consort.LlamaCpp;
using Consort.Testing;
using Xunit;

namespace Consort.Tests.LlamaCpp;

/// <summary>Damaged files must become <see cref="ModelFileException"/> before llama.cpp sees them.</summary>
public sealed class LlamaLoaderTests
{
    private static ModelFileException LoadFails(string path) =>
        Assert.Throws<ModelFileException>(() => LlamaModelFactory.Load(new LlamaModelOptions { Path = path }));

    [Fact]
    public void Truncated_GivesModelFileException()
    {
        using var dir = new TempDir();
        var bytes = File.ReadAllBytes(TestPaths.Stories260K);
        foreach (int len in new[] { 10, 100, 5000, bytes.Length / 2, bytes.Length - 1 })
        {
            var p = dir.File($"trunc{len}.gguf");
            File.WriteAllBytes(p, bytes[..len]);
            var e = LoadFails(p);
            Assert.Equal(Path.GetFullPath(p), e.FilePath);
        }
    }

    [Fact]
    public void FlippedHeaderCountsAndTensorOffset_GiveModelFileException()
    {
        using var dir = new TempDir();
        var bytes = File.ReadAllBytes(TestPaths.Stories260K);
        void Damage(string name, Action<byte[]> change)
        {
            var copy = (byte[])bytes.Clone();
            change(copy);
            var p = dir.File(name);
            File.WriteAllBytes(p, copy);
            LoadFails(p);
        }
        Damage("magic.gguf", b => b[0] ^= 0xFF);
        Damage("version.gguf", b => b[4] = 77);
        Damage("tensorcount.gguf", b => b[8 + 6] = 0x40);  // tensor count (u64 at 8): a huge high byte
        Damage("kvcount.gguf", b => b[16 + 5] = 0x10);     // metadata count (u64 at 16)
        // A tensor offset far past the end of the file: find the last tensor's info (its offset is the last u64 before padding).
        using (var g = GgufFile.Open(TestPaths.Stories260K))
        {
            var last = g.Tensors.MaxBy(t => t.Offset)!;
            var off = BitConverter.GetBytes((ulong)last.Offset);
            int at = IndexOf(bytes, off, (int)g.DataOffset);
            Assert.True(at > 0, "tensor offset bytes not found in header");
            Damage("offset.gguf", b => { b[at + 4] = 0x7F; });
        }
        // The undamaged copy still loads.
        var ok = dir.File("ok.gguf");
        File.WriteAllBytes(ok, bytes);
        using var m = LlamaModelFactory.Load(new LlamaModelOptions { Path = ok, ContextSize = 64, MaxSequences = 1 });
        Assert.Equal(512, m.Descriptor.Vocabulary!.Size);
    }

    [Fact]
    public void MissingFile_AndAdapterAsModel_AreClearErrors()
    {
        var e = LoadFails("/nonexistent/model.gguf");
        Assert.Contains("not found", e.Message);
    }

    [Fact]
    public void SamePath_SharesWeights_AndDisposeKeepsOthersWorking()
    {
        using var a = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, ContextSize = 64, MaxSequences = 1 });
        var b = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, ContextSize = 64, MaxSequences = 1 });
        Assert.Same(((LlamaTokenModel)a.Tokens!).Weights, ((LlamaTokenModel)b.Tokens!).Weights);
        b.Dispose();
        var r = a.Tokens!.ScoreAsync([1, 400], [401]).AsTask().Result;
        Assert.Single(r);
    }

    [Fact]
    public void BadOptions_AreConfigErrors()
    {
        Assert.Throws<ConfigException>(() => LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, MaxSequences = 0 }));
        Assert.Throws<ConfigException>(() => LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, ContextSize = 1 }));
        Assert.Throws<ConfigException>(() => LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, ContextSize = 1 << 30 }));
        Assert.Throws<ConfigException>(() => LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, Threads = 0 }));
        Assert.Throws<ConfigException>(() => LlamaModelFactory.Load(new LlamaModelOptions { Path = "" }));
        // A failed load leaves the shared weights usable for the next one.
        using var ok = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, ContextSize = 64, MaxSequences = 1 });
        Assert.Equal(64, ok.Descriptor.ContextSize);
    }

    private static int IndexOf(byte[] hay, byte[] needle, int end)
    {
        for (int i = end - needle.Length; i >= 0; i--)
            if (hay.AsSpan(i, needle.Length).SequenceEqual(needle)) return i;
        return -1;
    }
}
