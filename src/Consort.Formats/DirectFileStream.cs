using System.Runtime.InteropServices;

namespace Consort.Formats;

/// <summary>
/// A write-only, sequential stream over a new file opened with O_DIRECT (Linux): writes go from aligned staging
/// buffers straight to the disk, not through the page cache. A multi-gigabyte output (a merge) then neither costs the
/// kernel's copy into freshly allocated cache pages (on the 2-core VM about a CPU second per gigabyte, as much as
/// some merge methods' arithmetic) nor evicts the inputs from the cache. Data reaches the file in whole aligned
/// blocks, written in order in the background from a ring of <see cref="Buffers"/> staging buffers while the next one
/// fills; <see cref="Complete"/> writes the last, padded block, cuts the file to its length and syncs it.
/// <c>CONSORT_DIRECT_IO=0</c> turns it off.
/// </summary>
internal sealed partial class DirectFileStream : Stream
{
    private const int Align = 4096;
    /// <summary>Bytes staged per write.</summary>
    public const int BufferSize = 8 << 20;
    /// <summary>Staging buffers. With two, a merge handing over a 16 MB tensor waited for the first half's write
    /// before it could go on (a quarter second per gigabyte on a disk of 300 MB/s); with four it waits only when the
    /// disk falls behind by more than 24 MB.</summary>
    public const int Buffers = 4;
    private const int OWronly = 1, OCreat = 0x40, OExcl = 0x80, OCloexec = 0x80000;
    // O_DIRECT differs by architecture: 0x4000 on x86-64 is O_DIRECTORY on arm64, whose O_DIRECT is 0x10000.
    private static int ODirect => RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? 0x10000 : 0x4000;

    private readonly int _fd;
    private readonly nint[] _ring = new nint[Buffers];
    private readonly Task[] _writes = Enumerable.Repeat(Task.CompletedTask, Buffers).ToArray(); // each buffer's last write
    private int _current;          // the buffer filling
    private nint _buffer;
    private Task _last = Task.CompletedTask; // the latest write: each starts when the one before it is done
    private int _filled;
    private long _handed;          // bytes handed to the disk (a multiple of the block size)
    private bool _closed;

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags, int mode);
    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial nint pwrite(int fd, byte* buf, nuint count, long offset);
    [LibraryImport("libc", SetLastError = true)]
    private static partial int ftruncate(int fd, long length);
    [LibraryImport("libc", SetLastError = true)]
    private static partial int fsync(int fd);
    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);

    private unsafe DirectFileStream(int fd)
    {
        _fd = fd;
        for (int i = 0; i < Buffers; i++) _ring[i] = (nint)NativeMemory.AlignedAlloc(BufferSize, Align);
        _buffer = _ring[0];
    }

    /// <summary>Creates <paramref name="path"/> (which must not exist) for direct writing, or returns null where the
    /// platform or file system does not offer it (then write it the ordinary way).</summary>
    public static DirectFileStream? TryCreate(string path)
    {
        if (!OperatingSystem.IsLinux() || RuntimeInformation.ProcessArchitecture is not (Architecture.X64 or Architecture.Arm64)) return null;
        if (Environment.GetEnvironmentVariable("CONSORT_DIRECT_IO") == "0") return null; // the ordinary path, on request
        int fd;
        try { fd = open(path, OWronly | OCreat | OExcl | ODirect | OCloexec, Convert.ToInt32("644", 8)); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return null; }
        if (fd >= 0) return new DirectFileStream(fd);
        int errno = Marshal.GetLastPInvokeError();
        if (errno == 17) throw new IOException($"{path}: the file already exists"); // EEXIST: as FileMode.CreateNew
        return null; // EINVAL (tmpfs and others refuse O_DIRECT) and the rest: write the ordinary way
    }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => !_closed;
    public override long Length => _handed + _filled;
    public override long Position { get => Length; set => throw new NotSupportedException(); }
    /// <summary>Nothing to do: staged data is written in whole blocks as a buffer fills, and by <see cref="Complete"/>.</summary>
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
    public override void WriteByte(byte value) => Write([value]);

    public override unsafe void Write(ReadOnlySpan<byte> data)
    {
        ObjectDisposedException.ThrowIf(_closed, this);
        while (!data.IsEmpty)
        {
            int n = Math.Min(data.Length, BufferSize - _filled);
            data[..n].CopyTo(new Span<byte>((byte*)_buffer + _filled, n));
            _filled += n;
            data = data[n..];
            if (_filled == BufferSize) Hand(BufferSize);
        }
    }

    // Hands the first `length` staged bytes (a multiple of the block size) to a background write that follows the
    // ones before it (a continuation: no thread waits for its turn; an earlier write's error fails it too) and moves
    // to the next buffer of the ring, once that one's last write has finished (its error, if any, surfaces here).
    private void Hand(int length)
    {
        nint buffer = _buffer;
        long offset = _handed;
        _last = _writes[_current] = _last.ContinueWith(before =>
        {
            before.GetAwaiter().GetResult();
            WriteAt(buffer, length, offset);
        }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
        _handed += length;
        _filled = 0;
        _current = (_current + 1) % Buffers;
        _buffer = _ring[_current];
        _writes[_current].GetAwaiter().GetResult();
    }

    private unsafe void WriteAt(nint buffer, int length, long offset)
    {
        for (int done = 0; done < length;)
        {
            nint w = pwrite(_fd, (byte*)buffer + done, (nuint)(length - done), offset + done);
            if (w < 0)
            {
                int errno = Marshal.GetLastPInvokeError();
                if (errno == 4) continue; // EINTR
                throw new IOException($"writing the output failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno}; CONSORT_DIRECT_IO=0 writes it through the page cache instead)");
            }
            if (w == 0) throw new IOException("writing the output failed: the disk accepted no bytes");
            done += (int)w;
        }
    }

    /// <summary>Writes what is staged (the last block padded with zeros), cuts the file to the bytes written and syncs
    /// it to disk.</summary>
    public unsafe void Complete()
    {
        ObjectDisposedException.ThrowIf(_closed, this);
        long length = Length;
        if (_filled > 0)
        {
            int padded = (_filled + Align - 1) / Align * Align;
            new Span<byte>((byte*)_buffer + _filled, padded - _filled).Clear();
            Hand(padded);
        }
        _last.GetAwaiter().GetResult();
        if (ftruncate(_fd, length) != 0) throw new IOException($"setting the output's length failed (errno {Marshal.GetLastPInvokeError()})");
        if (fsync(_fd) != 0) throw new IOException($"syncing the output failed (errno {Marshal.GetLastPInvokeError()})");
        _handed = length;
    }

    ~DirectFileStream() => Dispose(false);

    protected override unsafe void Dispose(bool disposing)
    {
        if (!_closed)
        {
            _closed = true;
            // Never free a buffer under a write still in flight (after an error elsewhere).
            try { Task.WaitAll(_writes); } catch (AggregateException) { }
            close(_fd);
            foreach (var b in _ring) NativeMemory.AlignedFree((void*)b);
        }
        base.Dispose(disposing);
    }
}
