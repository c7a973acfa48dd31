using Consort.Training.Skills;
using Consort.Training.Native;
using LLama;
using LLama.Common;
using LLama.Native;

namespace Consort.Training;

/// <summary>Greedy exact-match accuracy of one skill through llama.cpp.</summary>
/// <param name="Correct">Items answered exactly.</param>
/// <param name="Total">Items asked.</param>
public sealed record SkillScore(int Correct, int Total)
{
    /// <summary>Accuracy in [0, 1].</summary>
    public double Accuracy => Total == 0 ? 0 : (double)Correct / Total;
}

/// <summary>
/// Runs a saved GGUF through llama.cpp (LLamaSharp) to check what the trainer produced: the loss on a batch (to compare
/// with the trainer's own) and greedy answers to skill questions. One context, one sequence at a time.
/// </summary>
public sealed class LlamaCppCheck : IDisposable
{
    private readonly LLamaWeights _weights;
    private readonly LLamaContext _context;
    private readonly LLamaBatch _batch = new();
    private readonly int _ctxSize;
    private readonly LoraAdapter? _adapter;

    /// <summary>Loads <paramref name="ggufPath"/>, with the LoRA adapter <paramref name="adapterPath"/> applied at scale 1 when given.</summary>
    public LlamaCppCheck(string ggufPath, int contextSize = 256, int threads = 2, string? adapterPath = null)
    {
        if (!File.Exists(ggufPath)) throw new ModelFileException(ggufPath, "file not found");
        using (var f = Formats.Gguf.GgufFile.Open(ggufPath)) TinyLlamaConfig.FromGguf(f); // managed validation first: llama.cpp aborts on bad files
        Ggml.EnsureInitialized();
        var p = new ModelParams(ggufPath)
        {
            GpuLayerCount = 0, ContextSize = (uint)contextSize, BatchSize = (uint)contextSize, UBatchSize = (uint)contextSize,
            Threads = threads, BatchThreads = threads,
        };
        try
        {
            _weights = LLamaWeights.LoadFromFile(p);
            _context = _weights.CreateContext(p);
            if (adapterPath is not null)
            {
                _adapter = _weights.NativeHandle.LoadLoraFromFile(adapterPath);
                _context.NativeHandle.SetLoraAdapters([(_adapter, 1f)]);
            }
        }
        catch (Exception e) when (e is not ConsortException)
        {
            throw new ModelFileException(ggufPath, $"llama.cpp could not load it ({e.Message})", e);
        }
        _ctxSize = contextSize;
    }

    /// <summary>Whether llama.cpp adds BOS to prompts of this model (plain-text prompting relies on it).</summary>
    public bool AddsBos => _weights.Vocab.ShouldAddBOS;

    /// <summary>llama.cpp's tokenization of <paramref name="text"/> (BOS added as the model asks).</summary>
    public int[] Tokenize(string text) => _context.Tokenize(text, addBos: true, special: false).Select(t => (int)t).ToArray();

    /// <summary>Mean negative log-likelihood over the unmasked targets of <paramref name="batch"/> (windows of <paramref name="seqLen"/>).</summary>
    public double Loss(TrainingBatch batch, int seqLen)
    {
        if (seqLen > _ctxSize) throw new ArgumentException("window longer than the context");
        double sum = 0; int count = 0;
        int windows = batch.Inputs.Length / seqLen;
        for (int w = 0; w < windows; w++)
        {
            _context.NativeHandle.MemorySequenceRemove(LLamaSeqId.Zero, -1, -1);
            _batch.Clear();
            var idx = new int[seqLen];
            for (int i = 0; i < seqLen; i++) idx[i] = _batch.Add((LLamaToken)batch.Inputs[w * seqLen + i], i, LLamaSeqId.Zero, true);
            Decode();
            for (int i = 0; i < seqLen; i++)
            {
                int k = w * seqLen + i;
                if (batch.Mask[k] == 0) continue;
                var logits = _context.NativeHandle.GetLogitsIth(idx[i]);
                float max = float.NegativeInfinity;
                foreach (var l in logits) max = Math.Max(max, l);
                double z = 0;
                foreach (var l in logits) z += Math.Exp(l - max);
                sum += -(logits[batch.Targets[k]] - max - Math.Log(z));
                count++;
            }
        }
        return sum / Math.Max(1, count);
    }

    /// <summary>Greedy completion of BOS + <paramref name="prompt"/> until EOS or <paramref name="maxTokens"/>.</summary>
    public string Complete(string prompt, int maxTokens = 12)
    {
        var tokens = new List<int> { ByteTokenizer.Bos };
        tokens.AddRange(ByteTokenizer.Encode(prompt));
        if (tokens.Count + maxTokens > _ctxSize) throw new ArgumentException("prompt too long for the context");
        _context.NativeHandle.MemorySequenceRemove(LLamaSeqId.Zero, -1, -1);
        _batch.Clear();
        int last = 0;
        for (int i = 0; i < tokens.Count; i++) last = _batch.Add((LLamaToken)tokens[i], i, LLamaSeqId.Zero, i == tokens.Count - 1);
        Decode();
        var output = new List<int>();
        for (int step = 0; step < maxTokens; step++)
        {
            var logits = _context.NativeHandle.GetLogitsIth(last);
            int best = 0;
            for (int v = 1; v < logits.Length; v++) if (logits[v] > logits[best]) best = v;
            if (best == ByteTokenizer.Eos || best == ByteTokenizer.Bos) break;
            output.Add(best);
            _batch.Clear();
            last = _batch.Add((LLamaToken)best, tokens.Count + output.Count - 1, LLamaSeqId.Zero, true);
            Decode();
        }
        return ByteTokenizer.Decode(output);
    }

    /// <summary>Greedy exact-match score on <paramref name="items"/> (answers of at most <paramref name="maxTokens"/> tokens).</summary>
    public SkillScore Score(IEnumerable<SkillItem> items, CancellationToken ct = default, int maxTokens = 12)
    {
        int ok = 0, n = 0;
        foreach (var item in items)
        {
            ct.ThrowIfCancellationRequested();
            n++;
            if (ExactMatch.IsMatch(Complete(item.Input, maxTokens), item.Output)) ok++;
        }
        return new(ok, n);
    }

    private void Decode()
    {
        var r = _context.NativeHandle.Decode(_batch);
        if (r != DecodeResult.Ok) throw new ConsortException($"llama_decode failed ({r})");
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _context.Dispose();
        _weights.Dispose();
    }
}
