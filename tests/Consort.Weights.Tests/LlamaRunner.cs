using Consort.Formats.Gguf;
using LLama;
using LLama.Common;
using LLama.Native;

namespace Consort.Weights.Tests;

/// <summary>Runs real llama.cpp (through LLamaSharp) on a GGUF and returns logits, for "llama.cpp loads it and agrees" checks.</summary>
internal static class LlamaRunner
{
    private static readonly object Gate = new();
    private static bool _ready;

    public const string Prompt = "Once upon a time, there was a little girl";

    private static void Init()
    {
        lock (Gate)
        {
            if (_ready) return;
            NativeApi.llama_empty_call();
            NativeLogConfig.llama_log_set((LLamaLogLevel _, string _) => { });
            _ready = true;
        }
    }

    /// <summary>Logits at every position of <paramref name="prompt"/> (tokenized by the model), concatenated.</summary>
    public static (int[] Tokens, float[][] Logits) Logits(string gguf, string prompt = Prompt, params (string Path, float Scale)[] adapters)
    {
        // Validate in managed code first: llama.cpp aborts the process on malformed files.
        using (GgufFile.Open(gguf)) { }
        Init();
        lock (Gate)
        {
            // F32 KV cache: the default F16 cache rounds K/V to 11 bits, which hides differences below ~1e-3 in the logits.
            var p = new ModelParams(gguf) { ContextSize = 256, BatchSize = 256, UBatchSize = 256, Threads = 1, BatchThreads = 1, GpuLayerCount = 0, TypeK = GGMLType.GGML_TYPE_F32, TypeV = GGMLType.GGML_TYPE_F32, FlashAttention = false };
            using var weights = LLamaWeights.LoadFromFile(p);
            using var ctx = weights.CreateContext(p);
            var loaded = new List<LoraAdapter>();
            if (adapters.Length > 0)
            {
                var list = adapters.Select(a => (weights.NativeHandle.LoadLoraFromFile(a.Path), a.Scale)).ToArray();
                ctx.NativeHandle.SetLoraAdapters(list);
            }
            var tokens = ctx.Tokenize(prompt, true, false).Select(t => (int)t).ToArray();
            var batch = new LLamaBatch();
            for (int i = 0; i < tokens.Length; i++) batch.Add((LLamaToken)tokens[i], i, LLamaSeqId.Zero, true);
            var rc = ctx.Decode(batch);
            if (rc != DecodeResult.Ok) throw new InvalidOperationException($"decode failed: {rc}");
            var logits = new float[tokens.Length][];
            for (int i = 0; i < tokens.Length; i++) logits[i] = ctx.NativeHandle.GetLogitsIth(i).ToArray();
            return (tokens, logits);
        }
    }

    public static float MaxAbsDiff(float[][] a, float[][] b)
    {
        Assert.Equal(a.Length, b.Length);
        float m = 0;
        for (int i = 0; i < a.Length; i++)
        {
            Assert.Equal(a[i].Length, b[i].Length);
            for (int j = 0; j < a[i].Length; j++) m = Math.Max(m, Math.Abs(a[i][j] - b[i][j]));
        }
        return m;
    }

    public static int ArgMax(float[] x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }
}
