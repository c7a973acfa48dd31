using System.Security.Cryptography;
using Consort.Formats;
using Consort.Testing;

namespace Consort.Tests.Formats;

/// <summary>Atomic outputs: nothing at the destination until commit, and large files (several writeback stretches) intact.</summary>
public class AtomicFileTests
{
    [Fact]
    public void LargeOutputIsCompleteAfterCommitAndAbsentBefore()
    {
        using var dir = new TempDir();
        var dest = dir.File("big.bin");
        var chunk = new byte[1 << 20];
        using var expected = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        long total = 2 * WritebackStream.Stride + 12345;
        using (var f = new AtomicFile(dest))
        {
            var rng = new Random(9);
            for (long written = 0; written < total;)
            {
                int n = (int)Math.Min(chunk.Length, total - written);
                rng.NextBytes(chunk);
                f.Stream.Write(chunk, 0, n);
                expected.AppendData(chunk, 0, n);
                written += n;
            }
            f.Stream.WriteByte(7);
            expected.AppendData([7]);
            Assert.False(File.Exists(dest));
            Assert.Equal(total + 1, f.Stream.Position);
            f.Commit();
            Assert.False(File.Exists(f.TempPath));
        }
        Assert.Equal(total + 1, new FileInfo(dest).Length);
        using var s = File.OpenRead(dest);
        Assert.Equal(expected.GetHashAndReset(), SHA256.HashData(s));
    }

    [Fact]
    public void DisposedWithoutCommitLeavesNothing()
    {
        using var dir = new TempDir();
        var dest = dir.File("never.bin");
        string temp;
        using (var f = new AtomicFile(dest))
        {
            f.Stream.Write(new byte[1000]);
            temp = f.TempPath;
            Assert.True(File.Exists(temp));
        }
        Assert.False(File.Exists(dest));
        Assert.False(File.Exists(temp));
    }
}
