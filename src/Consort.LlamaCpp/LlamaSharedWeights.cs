using LLama;
using LLama.Common;
using LLama.Native;

namespace Consort.LlamaCpp;

/// <summary>
/// Loaded weights (and LoRA adapters) shared by every model that uses the same file in this process.
/// Reference counted: the last user's release frees the native memory.
/// </summary>
internal sealed class LlamaSharedWeights
{
    private static readonly Dictionary<string, LlamaSharedWeights> Cache = new(StringComparer.Ordinal);
    private static readonly object CacheGate = new();

    private readonly Dictionary<string, LoraAdapter> _adapters = new(StringComparer.Ordinal);
    private int _refs;

    private LlamaSharedWeights(string key, LLamaWeights weights, GgufModelInfo info)
    {
        Key = key; Weights = weights; Info = info;
    }

    /// <summary>Cache key (the full path).</summary>
    public string Key { get; }
    /// <summary>The native weights.</summary>
    public LLamaWeights Weights { get; }
    /// <summary>Facts from the GGUF file.</summary>
    public GgufModelInfo Info { get; }

    /// <summary>Gets or loads the weights for <paramref name="path"/>; the caller must <see cref="Release"/>.</summary>
    public static LlamaSharedWeights Acquire(string path, bool semantic = true)
    {
        var full = System.IO.Path.GetFullPath(path);
        lock (CacheGate)
        {
            if (Cache.TryGetValue(full, out var hit))
            {
                hit._refs++;
                return hit;
            }
            // Validate in managed code first: llama.cpp aborts the process on malformed files. Then, the first time
            // this file is used, let a child process load and run it: an abort nobody has found yet kills the child only.
            var info = GgufModelInfo.Validate(full, semantic: semantic);
            LlamaProbe.Ensure(full);
            LlamaNative.EnsureInitialized();
            LLamaWeights weights;
            try
            {
                weights = LLamaWeights.LoadFromFile(new ModelParams(full) { GpuLayerCount = 0 });
            }
            catch (Exception e) when (e is not ConsortException)
            {
                throw new ModelFileException(full, $"llama.cpp could not load it ({e.Message})", e);
            }
            var shared = new LlamaSharedWeights(full, weights, info.Complete(weights)) { _refs = 1 };
            Cache[full] = shared;
            return shared;
        }
    }

    /// <summary>Loads (once) a LoRA adapter for these weights.</summary>
    public LoraAdapter GetAdapter(string path)
    {
        var full = System.IO.Path.GetFullPath(path);
        lock (CacheGate)
        {
            if (_adapters.TryGetValue(full, out var a)) return a;
            GgufModelInfo.Validate(full, adapter: true);
            try
            {
                a = Weights.NativeHandle.LoadLoraFromFile(full);
            }
            catch (Exception e) when (e is not ConsortException)
            {
                throw new ModelFileException(full, $"llama.cpp could not load it as a LoRA adapter for {Key} ({e.Message})", e);
            }
            _adapters[full] = a;
            return a;
        }
    }

    /// <summary>Drops one reference; frees the weights when none is left.</summary>
    public void Release()
    {
        lock (CacheGate)
        {
            if (--_refs > 0) return;
            Cache.Remove(Key);
            Weights.Dispose();
        }
    }
}
