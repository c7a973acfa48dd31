using System.Runtime.InteropServices;
using LLama;
using LLama.Native;

namespace Consort.LlamaCpp;

/// <summary>llama.cpp's <c>llama_batch</c>, field for field.</summary>
[StructLayout(LayoutKind.Sequential)]
internal unsafe struct NativeBatchStruct
{
    public int NTokens;
    public int* Token;
    public float* Embd;
    public int* Pos;
    public int* NSeqId;
    public int** SeqId;
    public sbyte* Logits;
}

/// <summary>
/// A token batch in native memory (one sequence id per token), the counterpart of LLamaSharp's <see cref="LLamaBatch"/>
/// for <see cref="NativeDecode"/>. Not thread-safe; one per context.
/// </summary>
internal sealed unsafe class NativeBatch : IDisposable
{
    private readonly int _capacity;
    private int* _tokens, _pos, _nSeq, _seqStore;
    private int** _seqIds;
    private sbyte* _logits;

    public NativeBatch(int capacity)
    {
        if (capacity <= 0) throw new ArgumentOutOfRangeException(nameof(capacity));
        _capacity = capacity;
        _tokens = (int*)NativeMemory.AllocZeroed((nuint)capacity, sizeof(int));
        _pos = (int*)NativeMemory.AllocZeroed((nuint)capacity, sizeof(int));
        _nSeq = (int*)NativeMemory.AllocZeroed((nuint)capacity, sizeof(int));
        _seqStore = (int*)NativeMemory.AllocZeroed((nuint)capacity, sizeof(int));
        _seqIds = (int**)NativeMemory.AllocZeroed((nuint)capacity, (nuint)sizeof(int*));
        _logits = (sbyte*)NativeMemory.AllocZeroed((nuint)capacity, 1);
        for (int i = 0; i < capacity; i++) { _seqIds[i] = _seqStore + i; _nSeq[i] = 1; }
    }

    /// <summary>Tokens in the batch.</summary>
    public int Count { get; private set; }

    /// <summary>Empties the batch.</summary>
    public void Clear() => Count = 0;

    /// <summary>Adds a token; returns its index in the batch (for the logits).</summary>
    public int Add(int token, int pos, int sequence, bool logits)
    {
        ObjectDisposedException.ThrowIf(_tokens == null, this);
        if (Count >= _capacity) throw new InvalidOperationException($"batch holds at most {_capacity} tokens");
        int i = Count++;
        _tokens[i] = token; _pos[i] = pos; _seqStore[i] = sequence; _logits[i] = logits ? (sbyte)1 : (sbyte)0;
        return i;
    }

    /// <summary>The batch as llama.cpp takes it (valid until the next change).</summary>
    public NativeBatchStruct Native => new() { NTokens = Count, Token = _tokens, Pos = _pos, NSeqId = _nSeq, SeqId = _seqIds, Logits = _logits };

    /// <summary>The same tokens in a LLamaSharp batch (for the locked fallback path).</summary>
    public LLamaBatch ToLLamaBatch()
    {
        var b = new LLamaBatch();
        for (int i = 0; i < Count; i++) b.Add((LLamaToken)_tokens[i], _pos[i], (LLamaSeqId)_seqStore[i], _logits[i] != 0);
        return b;
    }

    public void Dispose()
    {
        if (_tokens == null) return;
        NativeMemory.Free(_tokens); NativeMemory.Free(_pos); NativeMemory.Free(_nSeq); NativeMemory.Free(_seqStore);
        NativeMemory.Free(_seqIds); NativeMemory.Free(_logits);
        _tokens = null;
    }
}

/// <summary>
/// Calls llama.cpp's <c>llama_decode</c> directly. LLamaSharp's <c>SafeLLamaContextHandle.Decode</c> takes one lock for
/// the whole process (a workaround for old llama.cpp thread-safety issues), which serializes decoding of different
/// models; llama.cpp decodes different contexts concurrently, and Consort never decodes one context from two threads
/// (each model holds its own gate). Where the function cannot be found, decoding falls back to LLamaSharp's locked call.
/// </summary>
internal static unsafe class NativeDecode
{
    private static readonly delegate* unmanaged[Cdecl]<IntPtr, NativeBatchStruct, int> Function = Resolve();

    /// <summary>True when decoding bypasses LLamaSharp's process-wide lock.</summary>
    public static bool Direct => Function != null;

    /// <summary>Decodes <paramref name="batch"/> in <paramref name="context"/>; returns llama.cpp's status.</summary>
    public static int Decode(LLamaContext context, NativeBatch batch)
    {
        if (Function == null) return (int)context.NativeHandle.Decode(batch.ToLLamaBatch());
        var handle = context.NativeHandle;
        bool added = false;
        handle.DangerousAddRef(ref added);
        try { return Function(handle.DangerousGetHandle(), batch.Native); }
        finally { if (added) handle.DangerousRelease(); }
    }

    private static delegate* unmanaged[Cdecl]<IntPtr, NativeBatchStruct, int> Resolve()
    {
        if (Environment.GetEnvironmentVariable("CONSORT_LLAMA_LOCKED_DECODE") == "1") return null;
        LlamaNative.EnsureInitialized();
        try
        {
            // The library LLamaSharp loaded (its path depends on the CPU features it picked).
            string? path = OperatingSystem.IsLinux() && File.Exists("/proc/self/maps")
                ? File.ReadLines("/proc/self/maps").Select(l => l.IndexOf('/') is var i and >= 0 ? l[i..] : "")
                    .FirstOrDefault(p => Path.GetFileName(p) == "libllama.so")
                : null;
            if (path is null) return null;
            var lib = NativeLibrary.Load(path);
            return NativeLibrary.TryGetExport(lib, "llama_decode", out var f) ? (delegate* unmanaged[Cdecl]<IntPtr, NativeBatchStruct, int>)f : null;
        }
        catch (Exception e) when (e is IOException or DllNotFoundException or BadImageFormatException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
