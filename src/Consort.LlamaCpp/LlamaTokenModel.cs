using System.Diagnostics;
using LLama;
using LLama.Common;
using LLama.Native;

namespace Consort.LlamaCpp;

/// <summary>
/// Full-logit token access to a GGUF model through llama.cpp. Several sequences share one context
/// (one KV cache, batched decoding); each sequence owns a slot (a llama.cpp sequence id).
/// Every native limit is checked here first, because llama.cpp answers some bad input with a
/// process abort instead of an error.
/// </summary>
public sealed class LlamaTokenModel : ITokenModel
{
    private readonly LlamaSharedWeights _shared;
    private readonly LLamaContext _context;
    private readonly NativeBatch _batch;
    // llama.cpp contexts are not thread-safe: one native call sequence at a time per context.
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly SemaphoreSlim _freeSlots;
    private readonly bool[] _slotUsed;
    private readonly int _vocab;
    private bool _disposed;

    internal LlamaTokenModel(LlamaSharedWeights shared, LlamaModelOptions options, string name)
    {
        _shared = shared;
        var info = shared.Info;
        string where = $"model '{name}'";
        // Every number that sizes native work is bounded here too (configs are checked earlier, code callers here):
        // llama.cpp hangs or segfaults on e.g. 100000 threads instead of failing.
        Limits.Check(options.MaxSequences, 1, Limits.MaxSequences, "max_sequences", where, "llama.cpp's sequence limit");
        Limits.Check(options.BatchSize, 1, Limits.MaxTotalContextTokens, "batch size", where);
        int modelCtx = info.ContextLength > 0 ? info.ContextLength : 2048;
        int perSeq = options.ContextSize ?? Math.Min(modelCtx, 2048);
        Limits.Check(perSeq, 2, Limits.MaxContextTokens, "context_size", where);
        if ((long)perSeq * options.MaxSequences > MaxTotalContext)
            throw new ConfigException($"{where}: context of {perSeq} tokens x {options.MaxSequences} sequences exceeds {MaxTotalContext} tokens");
        if (options.Threads is { } t) Limits.Check(t, 1, Limits.MaxThreads, "threads", where, $"4 per processor of this machine's {Environment.ProcessorCount}");
        // The KV cache is allocated up front: refuse one that cannot fit in this machine's memory.
        long kvBytes = info.KvBytesPerToken * perSeq * options.MaxSequences;
        if (info.KvBytesPerToken > 0 && kvBytes > Limits.AvailableMemoryBytes / 2)
            throw new ConfigException($"{where}: a context of {perSeq} tokens x {options.MaxSequences} sequences needs a {kvBytes / (1 << 20):N0} MiB KV cache, " +
                                      $"more than half of this machine's {Limits.AvailableMemoryBytes / (1 << 20):N0} MiB; lower 'context_size' or 'max_sequences'");
        SequenceLength = perSeq;
        MaxSequences = options.MaxSequences;
        BatchSize = Math.Min(options.BatchSize, perSeq * MaxSequences);
        int threads = options.Threads ?? DefaultThreads(info.Parameters);
        var p = new ModelParams(info.Path)
        {
            // One KV stream shared by all sequences: forking is then a metadata copy inside llama.cpp
            // (cross-stream copies need whole buffers and assert otherwise).
            KVUnified = true,
            ContextSize = (uint)(perSeq * MaxSequences),
            SeqMax = (uint)MaxSequences,
            BatchSize = (uint)BatchSize,
            UBatchSize = (uint)BatchSize,
            Threads = threads,
            BatchThreads = threads,
        };
        foreach (var a in options.Adapters)
            if (!float.IsFinite(a.Scale)) throw new ConfigException($"model '{name}': adapter {a.Path} has scale {a.Scale}");
        // Adapters first: a bad adapter file must fail before a native context exists.
        var adapters = options.Adapters.Select(a => (shared.GetAdapter(a.Path), a.Scale)).ToArray();
        try
        {
            _context = shared.Weights.CreateContext(p);
        }
        catch (Exception e) when (e is not ConsortException)
        {
            throw new ConsortException($"model '{name}': llama.cpp could not create a context of {perSeq * MaxSequences} tokens ({e.Message})", e);
        }
        if (adapters.Length > 0) _context.NativeHandle.SetLoraAdapters(adapters);
        _vocab = shared.Weights.NativeHandle.Vocab.Count;
        _batch = new NativeBatch(BatchSize);
        _freeSlots = new SemaphoreSlim(MaxSequences, MaxSequences);
        _slotUsed = new bool[MaxSequences];
        Tokenizer = new LlamaTokenizer(shared.Weights, name, info.Coverage, options.Unencodable);
        Descriptor = new ModelDescriptor
        {
            Name = name,
            Access = ModelAccess.Text | ModelAccess.FullLogits | ModelAccess.Weights,
            Vocabulary = info.Vocabulary,
            ContextSize = perSeq,
            Architecture = info.Architecture,
            Parameters = info.Parameters,
            WeightsPath = info.Path,
        };
    }

    /// <summary>Upper bound on context tokens per model (sequence length x sequences), far above what fits in memory anyway.</summary>
    public const int MaxTotalContext = Limits.MaxTotalContextTokens;

    /// <inheritdoc />
    public ModelDescriptor Descriptor { get; }
    /// <inheritdoc />
    public ITokenizer Tokenizer { get; }
    /// <summary>The llama.cpp tokenizer (with template-aware encoding).</summary>
    public LlamaTokenizer LlamaTokenizer => (LlamaTokenizer)Tokenizer;
    /// <inheritdoc />
    public DistributionKind DistributionKind => DistributionKind.FullLogits;
    /// <inheritdoc />
    public UsageMeter Usage { get; } = new();
    /// <summary>Most tokens one sequence may hold (prompt + output).</summary>
    public int SequenceLength { get; }
    /// <summary>Sequences decoded together in this context.</summary>
    public int MaxSequences { get; }
    /// <summary>Most tokens one llama_decode call gets.</summary>
    public int BatchSize { get; }
    /// <summary>True when the GGUF carries a chat template.</summary>
    public bool HasChatTemplate => _shared.Info.HasChatTemplate;
    internal LLamaWeights Weights => _shared.Weights;

    private static int DefaultThreads(long? parameters) =>
        // Thread hand-off costs more than it saves on models of a few million parameters.
        parameters is < 20_000_000 ? 1 : Math.Max(1, Environment.ProcessorCount);

    /// <inheritdoc />
    public async ValueTask<ITokenSequence> StartAsync(IReadOnlyList<int> prompt, CancellationToken cancellationToken = default)
    {
        CheckTokens(prompt, "prompt");
        if (prompt.Count > SequenceLength)
            throw new ConsortException($"model '{Descriptor.Name}': prompt of {prompt.Count} tokens exceeds context of {SequenceLength}");
        int slot = await AcquireSlotAsync(wait: true, cancellationToken);
        var seq = new LlamaTokenSequence(this, slot);
        try
        {
            await _gate.WaitAsync(cancellationToken);
            var sw = Stopwatch.StartNew();
            try
            {
                ThrowIfDisposed();
                _context.NativeHandle.MemorySequenceRemove((LLamaSeqId)slot, -1, -1);
                seq.SetNext(DecodeRun(slot, prompt, 0, cancellationToken));
                seq.TokenList.AddRange(prompt);
            }
            finally
            {
                _gate.Release();
            }
            Usage.Add(prompt.Count, 0, sw.Elapsed);
            return seq;
        }
        catch
        {
            seq.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public async ValueTask StepAsync(IReadOnlyList<(ITokenSequence Sequence, int Token)> steps, CancellationToken cancellationToken = default)
    {
        if (steps.Count == 0) return;
        var seqs = new LlamaTokenSequence[steps.Count];
        var seen = new HashSet<int>();
        for (int i = 0; i < steps.Count; i++)
        {
            if (steps[i].Sequence is not LlamaTokenSequence s || !ReferenceEquals(s.Owner, this))
                throw new ArgumentException($"step {i}: the sequence does not belong to model '{Descriptor.Name}'");
            s.ThrowIfDisposed();
            if (!seen.Add(s.Slot)) throw new ArgumentException($"step {i}: the same sequence appears twice in one step");
            CheckToken(steps[i].Token);
            if (s.TokenList.Count + 1 > SequenceLength)
                throw new ConsortException($"model '{Descriptor.Name}': sequence of {s.TokenList.Count + 1} tokens exceeds context of {SequenceLength}");
            seqs[i] = s;
        }
        await _gate.WaitAsync(cancellationToken);
        var sw = Stopwatch.StartNew();
        try
        {
            ThrowIfDisposed();
            // Batched: one llama_decode for all sequences (split only if they outnumber the batch size).
            for (int start = 0; start < seqs.Length; start += BatchSize)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int n = Math.Min(BatchSize, seqs.Length - start);
                _batch.Clear();
                var idx = new int[n];
                for (int j = 0; j < n; j++)
                {
                    var s = seqs[start + j];
                    idx[j] = _batch.Add(steps[start + j].Token, s.TokenList.Count, s.Slot, true);
                }
                Decode();
                for (int j = 0; j < n; j++)
                {
                    var s = seqs[start + j];
                    s.SetNext(_context.NativeHandle.GetLogitsIth(idx[j]).ToArray());
                    s.TokenList.Add(steps[start + j].Token);
                }
            }
        }
        finally
        {
            _gate.Release();
        }
        Usage.Add(0, steps.Count, sw.Elapsed);
    }

    /// <inheritdoc />
    public async ValueTask<float[]> ScoreAsync(IReadOnlyList<int> prompt, IReadOnlyList<int> continuation, CancellationToken cancellationToken = default)
    {
        CheckTokens(prompt, "prompt");
        if (continuation.Count == 0) return [];
        foreach (var t in continuation) CheckToken(t);
        int total = prompt.Count + continuation.Count - 1; // the last token is scored, not fed
        if (total > SequenceLength)
            throw new ConsortException($"model '{Descriptor.Name}': prompt of {prompt.Count} tokens plus continuation of {continuation.Count} exceeds context of {SequenceLength}");
        var all = new int[total];
        for (int i = 0; i < prompt.Count; i++) all[i] = prompt[i];
        for (int i = 0; i < continuation.Count - 1; i++) all[prompt.Count + i] = continuation[i];
        var result = new float[continuation.Count];
        int slot = await AcquireSlotAsync(wait: true, cancellationToken);
        try
        {
            await _gate.WaitAsync(cancellationToken);
            var sw = Stopwatch.StartNew();
            try
            {
                ThrowIfDisposed();
                var h = _context.NativeHandle;
                h.MemorySequenceRemove((LLamaSeqId)slot, -1, -1);
                var lp = new float[_vocab];
                int first = prompt.Count - 1; // position whose logits predict continuation[0]
                for (int start = 0; start < total; start += BatchSize)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    int n = Math.Min(BatchSize, total - start);
                    _batch.Clear();
                    var outputs = new List<(int Index, int Pos)>();
                    for (int j = 0; j < n; j++)
                    {
                        int pos = start + j;
                        bool want = pos >= first;
                        int bi = _batch.Add(all[pos], pos, slot, want);
                        if (want) outputs.Add((bi, pos));
                    }
                    Decode();
                    foreach (var (bi, pos) in outputs)
                    {
                        TokenMath.LogSoftmax(h.GetLogitsIth(bi), lp);
                        result[pos - first] = lp[continuation[pos - first]];
                    }
                }
                h.MemorySequenceRemove((LLamaSeqId)slot, -1, -1);
            }
            finally
            {
                _gate.Release();
            }
            Usage.Add(prompt.Count, continuation.Count, sw.Elapsed);
        }
        finally
        {
            ReleaseSlot(slot);
        }
        return result;
    }

    // ---- used by sequences ----

    internal async ValueTask AppendAsync(LlamaTokenSequence seq, IReadOnlyList<int> tokens, CancellationToken ct)
    {
        seq.ThrowIfDisposed();
        if (tokens.Count == 0) return;
        foreach (var t in tokens) CheckToken(t);
        if (seq.TokenList.Count + tokens.Count > SequenceLength)
            throw new ConsortException($"model '{Descriptor.Name}': sequence of {seq.TokenList.Count + tokens.Count} tokens exceeds context of {SequenceLength}");
        await _gate.WaitAsync(ct);
        var sw = Stopwatch.StartNew();
        try
        {
            ThrowIfDisposed();
            seq.SetNext(DecodeRun(seq.Slot, tokens, seq.TokenList.Count, ct));
            seq.TokenList.AddRange(tokens);
        }
        finally
        {
            _gate.Release();
        }
        Usage.Add(tokens.Count, 0, sw.Elapsed);
    }

    internal async ValueTask<ITokenSequence> ForkAsync(LlamaTokenSequence seq, CancellationToken ct)
    {
        seq.ThrowIfDisposed();
        int slot = await AcquireSlotAsync(wait: false, ct);
        var copy = new LlamaTokenSequence(this, slot);
        try
        {
            await _gate.WaitAsync(ct);
            try
            {
                ThrowIfDisposed();
                var h = _context.NativeHandle;
                h.MemorySequenceRemove((LLamaSeqId)slot, -1, -1);
                // Shares the cached prefix: the KV cells are tagged with both sequence ids.
                h.MemorySequenceCopy((LLamaSeqId)seq.Slot, (LLamaSeqId)slot, -1, -1);
            }
            finally
            {
                _gate.Release();
            }
            copy.TokenList.AddRange(seq.TokenList);
            copy.SetNext((float[])seq.Next.Logits!.Clone());
            return copy;
        }
        catch
        {
            copy.Dispose();
            throw;
        }
    }

    internal async ValueTask RewindAsync(LlamaTokenSequence seq, int length, CancellationToken ct)
    {
        seq.ThrowIfDisposed();
        if (length < 1 || length > seq.TokenList.Count)
            throw new ArgumentOutOfRangeException(nameof(length), $"rewind to {length} tokens: must be 1..{seq.TokenList.Count}");
        if (length == seq.TokenList.Count) return;
        await _gate.WaitAsync(ct);
        var sw = Stopwatch.StartNew();
        try
        {
            ThrowIfDisposed();
            // Drop the last kept token too and feed it again: that recomputes the logits after it.
            _context.NativeHandle.MemorySequenceRemove((LLamaSeqId)seq.Slot, length - 1, -1);
            int last = seq.TokenList[length - 1];
            seq.TokenList.RemoveRange(length - 1, seq.TokenList.Count - (length - 1));
            seq.SetNext(DecodeRun(seq.Slot, [last], length - 1, ct));
            seq.TokenList.Add(last);
        }
        finally
        {
            _gate.Release();
        }
        Usage.Add(1, 0, sw.Elapsed);
    }

    internal void FreeSequence(int slot)
    {
        _gate.Wait();
        try
        {
            if (!_disposed) _context.NativeHandle.MemorySequenceRemove((LLamaSeqId)slot, -1, -1);
        }
        finally
        {
            _gate.Release();
        }
        ReleaseSlot(slot);
    }

    // ---- internals (callers hold _gate) ----

    /// <summary>Feeds <paramref name="tokens"/> at positions from <paramref name="startPos"/> in chunks of
    /// at most <see cref="BatchSize"/> and returns the logits after the last one.</summary>
    private float[] DecodeRun(int slot, IReadOnlyList<int> tokens, int startPos, CancellationToken ct)
    {
        int lastIndex = -1;
        for (int start = 0; start < tokens.Count; start += BatchSize)
        {
            ct.ThrowIfCancellationRequested();
            int n = Math.Min(BatchSize, tokens.Count - start);
            _batch.Clear();
            for (int j = 0; j < n; j++)
            {
                bool last = start + j == tokens.Count - 1;
                int bi = _batch.Add(tokens[start + j], startPos + start + j, slot, last);
                if (last) lastIndex = bi;
            }
            Decode();
        }
        return _context.NativeHandle.GetLogitsIth(lastIndex).ToArray();
    }

    private void Decode()
    {
        var r = (DecodeResult)NativeDecode.Decode(_context, _batch);
        if (r != DecodeResult.Ok)
            throw new ConsortException($"model '{Descriptor.Name}': llama_decode failed ({r})");
    }

    private async ValueTask<int> AcquireSlotAsync(bool wait, CancellationToken ct)
    {
        ThrowIfDisposed();
        if (wait) await _freeSlots.WaitAsync(ct);
        else if (!_freeSlots.Wait(0))
            throw new ConsortException($"model '{Descriptor.Name}': all {MaxSequences} sequences are in use (raise max_sequences)");
        lock (_slotUsed)
        {
            for (int i = 0; i < _slotUsed.Length; i++)
                if (!_slotUsed[i]) { _slotUsed[i] = true; return i; }
        }
        _freeSlots.Release();
        throw new InvalidOperationException("slot accounting out of step");
    }

    private void ReleaseSlot(int slot)
    {
        lock (_slotUsed)
        {
            if (!_slotUsed[slot]) return;
            _slotUsed[slot] = false;
        }
        _freeSlots.Release();
    }

    private void CheckTokens(IReadOnlyList<int> tokens, string what)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        if (tokens.Count == 0) throw new ConsortException($"model '{Descriptor.Name}': empty {what} (at least one token is needed)");
        foreach (var t in tokens) CheckToken(t);
    }

    private void CheckToken(int t)
    {
        if ((uint)t >= (uint)_vocab)
            throw new ConsortException($"model '{Descriptor.Name}': token id {t} is outside the vocabulary (0..{_vocab - 1})");
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>Frees the context and drops this model's reference to the shared weights.</summary>
    public void Dispose()
    {
        _gate.Wait();
        try
        {
            if (_disposed) return;
            _disposed = true;
            _context.Dispose();
            _batch.Dispose();
        }
        finally
        {
            _gate.Release();
        }
        _shared.Release();
    }
}

/// <summary>One llama.cpp sequence (a slot in the shared context).</summary>
internal sealed class LlamaTokenSequence : ITokenSequence
{
    private TokenDistribution? _next;
    private bool _disposed;

    public LlamaTokenSequence(LlamaTokenModel owner, int slot)
    {
        Owner = owner; Slot = slot;
    }

    public LlamaTokenModel Owner { get; }
    public int Slot { get; }
    public List<int> TokenList { get; } = [];
    public ITokenModel Model => Owner;
    public IReadOnlyList<int> Tokens => TokenList;
    public TokenDistribution Next => _next ?? throw new InvalidOperationException("sequence has no distribution yet");

    public void SetNext(float[] logits) => _next = TokenDistribution.FromLogits(logits);

    public ValueTask AppendAsync(IReadOnlyList<int> tokens, CancellationToken cancellationToken = default) =>
        Owner.AppendAsync(this, tokens, cancellationToken);

    public ValueTask<ITokenSequence> ForkAsync(CancellationToken cancellationToken = default) => Owner.ForkAsync(this, cancellationToken);

    public ValueTask RewindAsync(int length, CancellationToken cancellationToken = default) => Owner.RewindAsync(this, length, cancellationToken);

    public void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Owner.FreeSequence(Slot);
    }
}
