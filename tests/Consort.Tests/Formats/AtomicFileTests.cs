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

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(4095)]
    [InlineData(4096)]
    [InlineData(DirectFileStream.BufferSize - 1)]
    [InlineData(DirectFileStream.BufferSize)]
    [InlineData(2 * DirectFileStream.BufferSize + 4097)]
    [InlineData((DirectFileStream.Buffers + 2) * DirectFileStream.BufferSize + 12345)] // around the ring and on
    public void DirectOutputHoldsExactlyTheBytesWritten(int total)
    {
        using var dir = new TempDir();
        var dest = dir.File("direct.bin");
        var data = new byte[total];
        new Random(total).NextBytes(data);
        bool direct;
        using (var f = new AtomicFile(dest, direct: true))
        {
            direct = f.IsDirect;
            // Odd-sized pieces, as writers append headers, tensors and padding.
            for (int at = 0, piece = 1; at < total; at += piece, piece = piece * 3 % 100_003 + 1)
                f.Stream.Write(data, at, Math.Min(piece, total - at));
            Assert.Equal(total, f.Stream.Position);
            Assert.False(File.Exists(dest));
            f.Commit();
        }
        // On Linux ext4/xfs (this project's machines) the file was written around the page cache; elsewhere the
        // ordinary path wrote it, and the bytes must be the same either way.
        if (OperatingSystem.IsLinux() && DriveFormat(dir.Path) is "ext4" or "xfs" or "ext3") Assert.True(direct, "O_DIRECT was not used on " + DriveFormat(dir.Path));
        Assert.Equal(data, File.ReadAllBytes(dest));
    }

    [Fact]
    public void AnUncommittedDirectOutputLeavesNothing()
    {
        using var dir = new TempDir();
        var dest = dir.File("direct.bin");
        string temp;
        using (var f = new AtomicFile(dest, direct: true))
        {
            temp = f.TempPath;
            f.Stream.Write(new byte[DirectFileStream.BufferSize + 10]);
        }
        Assert.False(File.Exists(dest));
        Assert.False(File.Exists(temp));
    }

    private static string DriveFormat(string path)
    {
        try { return new DriveInfo(Path.GetFullPath(path)).DriveFormat; } catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException) { return "?"; }
    }
}
