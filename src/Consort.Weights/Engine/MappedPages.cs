using System.Runtime.InteropServices;
using Consort.Formats;
using Consort.Formats.Gguf;

namespace Consort.Weights.Engine;

/// <summary>
/// Drops already-decoded pages of memory-mapped inputs from this process's resident set (madvise DONTNEED on a
/// read-only file mapping: the data stays in the page cache, only our RSS shrinks), so peak memory does not grow
/// with model size.
/// </summary>
internal static unsafe partial class MappedPages
{
    private const int MadvDontNeed = 4;
    private const int MadvWillNeed = 3;
    private static readonly bool Enabled = OperatingSystem.IsLinux();

    [LibraryImport("libc", SetLastError = true)]
    private static partial int madvise(nint addr, nuint length, int advice);

    /// <summary>
    /// Asks the kernel to read a whole tensor into the page cache in the background (madvise WILLNEED), so that
    /// reading the next tensor from a cold cache overlaps the work on the current one.
    /// </summary>
    public static void Prefetch(ITensorSource source, TensorEntry tensor) => AdviseWhole(source, tensor, MadvWillNeed);

    /// <summary>
    /// Maps a tensor's pages into this process (madvise POPULATE_READ, Linux 5.14+; reading them from disk when they are
    /// not cached) so that decoding it later takes no page faults: on a virtual machine a fault costs more than
    /// decoding the page's values. Synchronous: call it off the critical path, for tensors small enough to be resident.
    /// </summary>
    public static void Populate(ITensorSource source, TensorEntry tensor) => AdviseWhole(source, tensor, MadvPopulateRead);

    private const int MadvPopulateRead = 22;

    private static void AdviseWhole(ITensorSource source, TensorEntry tensor, int advice)
    {
        if (!Enabled) return;
        for (long at = 0; at < tensor.ByteSize; at += int.MaxValue / 2)
            Advise(source, tensor, at, (int)Math.Min(int.MaxValue / 2, tensor.ByteSize - at), advice, outward: true);
    }

    public static void Release(ITensorSource source, TensorEntry tensor, long startElement, int elements)
    {
        if (!Enabled) return;
        long byteStart = GgmlTypes.ByteSize(tensor.Type, startElement);
        long len = GgmlTypes.ByteSize(tensor.Type, elements);
        if (len < 1 << 20) return; // not worth a syscall
        Advise(source, tensor, byteStart, (int)len, MadvDontNeed, outward: false);
    }

    // Dropping pages rounds inward (never touching a neighbour's bytes); prefetching rounds outward.
    private static void Advise(ITensorSource source, TensorEntry tensor, long byteStart, int len, int advice, bool outward)
    {
        var span = source.GetBytes(tensor, byteStart, len);
        fixed (byte* p = span)
        {
            long page = Environment.SystemPageSize;
            long a = outward ? (long)p / page * page : ((long)p + page - 1) / page * page;
            long e = outward ? ((long)p + len + page - 1) / page * page : ((long)p + len) / page * page;
            if (e > a)
            {
                try { madvise((nint)a, (nuint)(e - a), advice); } catch (DllNotFoundException) { } catch (EntryPointNotFoundException) { }
            }
        }
    }
}
