using System.Diagnostics;
using LLama.Common;
using LLama.Native;

namespace Consort.LlamaCpp;

/// <summary>What <see cref="LlamaRawDecode.Run"/> measured.</summary>
/// <param name="Sequences">Sequences decoded together.</param>
/// <param name="GeneratedTokens">Greedy tokens generated (the first of each sequence from its prompt's logits).</param>
/// <param name="PromptTokens">Prompt tokens fed.</param>
/// <param name="Seconds">Wall time, prompts included.</param>
/// <param name="DecodeSeconds">Wall time of the steps alone.</param>
public sealed record RawDecodeResult(int Sequences, long GeneratedTokens, long PromptTokens, double Seconds, double DecodeSeconds);

/// <summary>
/// Plain batched decoding with llama.cpp and nothing around it: all prompts in one llama_decode call, then one call per
/// step with every sequence's greedy token, in a context of its own (llama.cpp's unified KV cache, as its server and
/// batched example use). The reference the batching benchmarks compare Consort's engine with.
/// </summary>
public static class LlamaRawDecode
{
    /// <summary>Generates <paramref name="tokens"/> greedy tokens after each of <paramref name="prompts"/>, as a chat
    /// client does: the first from the prompt's logits, then one llama_decode per further token (the last is not fed).</summary>
    /// <param name="options">The model (path, threads); max sequences is the prompt count.</param>
    /// <param name="prompts">One prompt per sequence.</param>
    /// <param name="tokens">Tokens to generate per sequence.</param>
    public static RawDecodeResult Run(LlamaModelOptions options, IReadOnlyList<int[]> prompts, int tokens)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (prompts.Count is < 1 or > 64) throw new ConsortException($"raw decode: 1..64 prompts, got {prompts.Count}");
        if (tokens < 1) throw new ConsortException($"raw decode: tokens must be positive, got {tokens}");
        int steps = tokens - 1;
        int longest = prompts.Max(p => p.Length);
        int perSeq = longest + tokens;
        int total = prompts.Sum(p => p.Length);
        var shared = LlamaSharedWeights.Acquire(options.Path);
        try
        {
            int threads = options.Threads ?? (shared.Info.Parameters is < 20_000_000 ? 1 : Math.Max(1, Environment.ProcessorCount));
            int batch = Math.Max(total, prompts.Count);
            var p = new ModelParams(shared.Info.Path)
            {
                KVUnified = true, ContextSize = (uint)(perSeq * prompts.Count), SeqMax = (uint)prompts.Count,
                BatchSize = (uint)batch, UBatchSize = (uint)batch, Threads = threads, BatchThreads = threads,
            };
            using var context = shared.Weights.CreateContext(p);
            using var nb = new NativeBatch(batch);
            int vocab = shared.Weights.NativeHandle.Vocab.Count;
            var next = new int[prompts.Count];
            var index = new int[prompts.Count];
            void Decode()
            {
                var r = (DecodeResult)NativeDecode.Decode(context, nb);
                if (r != DecodeResult.Ok) throw new ConsortException($"raw decode: llama_decode failed ({r})");
                for (int s = 0; s < next.Length; s++) next[s] = ArgMax(context.NativeHandle.GetLogitsIth(index[s]));
            }
            var sw = Stopwatch.StartNew();
            for (int s = 0; s < prompts.Count; s++)
                for (int i = 0; i < prompts[s].Length; i++)
                {
                    int bi = nb.Add(prompts[s][i], i, s, i == prompts[s].Length - 1);
                    if (i == prompts[s].Length - 1) index[s] = bi;
                }
            Decode();
            double prefill = sw.Elapsed.TotalSeconds;
            for (int t = 0; t < steps; t++)
            {
                nb.Clear();
                for (int s = 0; s < prompts.Count; s++) index[s] = nb.Add(next[s], prompts[s].Length + t, s, true);
                Decode();
            }
            double secs = sw.Elapsed.TotalSeconds;
            return new RawDecodeResult(prompts.Count, (long)tokens * prompts.Count, total, secs, secs - prefill);
        }
        finally
        {
            shared.Release();
        }
    }

    private static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }
}
