using System.IO.MemoryMappedFiles;

namespace Consort.Formats;

/// <summary>
/// A whole file mapped read-only into memory, the base of the GGUF and safetensors readers. Using the
/// pointer after <see cref="Dispose"/> throws instead of touching unmapped memory.
/// </summary>
internal sealed unsafe class ReadOnlyMapping : IDisposable
{
    private readonly MemoryMappedFile _map;
    private MemoryMappedViewAccessor? _view;
    private readonly byte* _pointer;

    private ReadOnlyMapping(MemoryMappedFile map, MemoryMappedViewAccessor view, byte* pointer)
    {
        _map = map; _view = view; _pointer = pointer;
    }

    /// <summary>Maps <paramref name="path"/>; I/O failures become a <see cref="ModelFileException"/>.</summary>
    public static ReadOnlyMapping Open(string path)
    {
        MemoryMappedFile? map = null;
        try
        {
            map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            var view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* ptr = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref ptr);
            return new ReadOnlyMapping(map, view, ptr + view.PointerOffset);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            map?.Dispose();
            throw new ModelFileException(path, "cannot be read: " + e.Message, e);
        }
    }

    /// <summary>Start of the file's bytes.</summary>
    public byte* Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_view is null, this);
            return _pointer;
        }
    }

    /// <summary>Unmaps the file.</summary>
    public void Dispose()
    {
        var view = Interlocked.Exchange(ref _view, null);
        if (view is null) return;
        view.SafeMemoryMappedViewHandle.ReleasePointer();
        view.Dispose();
        _map.Dispose();
    }
}
