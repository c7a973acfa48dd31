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
    private static readonly bool Enabled = OperatingSystem.IsLinux();

    [LibraryImport("libc", SetLastError = true)]
    private static partial int madvise(nint addr, nuint length, int advice);

    public static void Release(ITensorSource source, TensorEntry tensor, long startElement, int elements)
    {
        if (!Enabled) return;
        long byteStart = GgmlTypes.ByteSize(tensor.Type, startElement);
        long len = GgmlTypes.ByteSize(tensor.Type, elements);
        if (len < 1 << 20) return; // not worth a syscall
        var span = source.GetBytes(tensor, byteStart, (int)len);
        fixed (byte* p = span)
        {
            long page = Environment.SystemPageSize;
            long a = ((long)p + page - 1) / page * page, e = ((long)p + len) / page * page;
            if (e > a)
            {
                try { madvise((nint)a, (nuint)(e - a), MadvDontNeed); } catch (DllNotFoundException) { } catch (EntryPointNotFoundException) { }
            }
        }
    }
}
