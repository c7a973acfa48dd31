using System.Runtime.InteropServices;

namespace Consort.Formats;

/// <summary>
/// A write-only stream over a file that asks the kernel to start writing each completed stretch of
/// <see cref="Stride"/> bytes to disk while the writer goes on (Linux <c>sync_file_range</c>), so the final fsync
/// of a large output waits for the last stretch only instead of the whole file. Elsewhere it is a plain wrapper.
/// </summary>
internal sealed partial class WritebackStream(FileStream inner) : Stream
{
    /// <summary>Bytes between writeback requests.</summary>
    public const long Stride = 64L << 20;
    private const uint SyncFileRangeWrite = 2;
    private static bool _supported = OperatingSystem.IsLinux();
    private long _requested;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int sync_file_range(nint fd, long offset, long nbytes, uint flags);

    public FileStream Inner => inner;
    public override bool CanRead => false;
    public override bool CanSeek => inner.CanSeek;
    public override bool CanWrite => true;
    public override long Length => inner.Length;
    public override long Position { get => inner.Position; set => inner.Position = value; }
    public override void Flush() => inner.Flush();
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);
    public override void SetLength(long value) => inner.SetLength(value);
    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
    public override void WriteByte(byte value) { inner.WriteByte(value); Advance(); }
    public override void Write(ReadOnlySpan<byte> buffer) { inner.Write(buffer); Advance(); }

    private void Advance()
    {
        long pos = inner.Position;
        if (!_supported || pos - _requested < Stride) return;
        inner.Flush();
        try
        {
            // A failure only loses the head start; the final fsync still makes the file durable.
            if (sync_file_range(inner.SafeFileHandle.DangerousGetHandle(), _requested, pos - _requested, SyncFileRangeWrite) != 0
                && Marshal.GetLastPInvokeError() is 38 or 22 or 29) // ENOSYS, EINVAL, ESPIPE: not for this file
                _supported = false;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { _supported = false; }
        _requested = pos;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) inner.Dispose();
        base.Dispose(disposing);
    }
}
