using System.Diagnostics;
using LLama;
using LLama.Common;
using LLama.Native;

namespace Consort.LlamaCpp;

/// <summary>
/// Full-logit token access to a GGUF model through llama.cpp. Up to <see cref="MaxSequences"/> sequences share one
/// context, each in its own slot (a llama.cpp sequence id with its own KV stream); concurrent calls on any of them
/// are decoded together by the model's <see cref="LlamaBatchEngine"/> (continuous batching, prefix reuse), and a
/// sequence's results are the same, bit for bit, whatever else is in the batch.
/// Every native limit is checked here first, because llama.cpp answers some bad input with a
/// process abort instead of an error.
/// </summary>
public sealed class LlamaTokenModel : ITokenModel
{
    private readonly LlamaSharedWeights _shared;
    private readonly int _vocab;
    private int _disposed;

    internal LlamaTokenModel(LlamaSharedWeights shared, LlamaModelOptions options, string name)
    {
        _shared = shared;
        var info = shared.Info;
        string where = $"model '{name}'";
        // Every number that sizes native work is bounded here too (configs are checked earlier, code callers here):
        // llama.cpp hangs or segfaults on e.g. 100000 threads instead of failing.
        int maxSeq = Math.Min(Limits.MaxSequences, (int)NativeApi.llama_max_parallel_sequences());
        Limits.Check(options.MaxSequences, 1, maxSeq, "max_sequences", where, "llama.cpp's sequence limit");
        // Two: a call never computes a single row (see LlamaBatchEngine), so even one token travels with a pad.
        Limits.Check(options.BatchSize, 2, Limits.MaxTotalContextTokens, "batch size", where, "a decode call never computes a single row");
        int modelCtx = info.ContextLength > 0 ? info.ContextLength : 2048;
        int perSeq = options.ContextSize ?? Math.Min(modelCtx, 2048);
        Limits.Check(perSeq, 2, Limits.MaxContextTokens, "context_size", where);
        if ((long)(perSeq + 1) * options.MaxSequences > MaxTotalContext)
            throw new ConfigException($"{where}: context of {perSeq} tokens x {options.MaxSequences} sequences exceeds {MaxTotalContext} tokens");
        if (options.Threads is { } t) Limits.Check(t, 1, Limits.MaxThreads, "threads", where, $"4 per processor of this machine's {Environment.ProcessorCount}");
        // The KV cache is allocated up front: refuse one that cannot fit in this machine's memory.
        long kvBytes = info.KvBytesPerToken * perSeq * options.MaxSequences;
        if (info.KvBytesPerToken > 0 && kvBytes > Limits.AvailableMemoryBytes / 2)
            throw new ConfigException($"{where}: a context of {perSeq} tokens x {options.MaxSequences} sequences needs a {kvBytes / (1 << 20):N0} MiB KV cache, " +
                                      $"more than half of this machine's {Limits.AvailableMemoryBytes / (1 << 20):N0} MiB; lower 'context_size' or 'max_sequences'");
        SequenceLength = perSeq;
        MaxSequences = options.MaxSequences;
        BatchSize = Math.Min(options.BatchSize, Math.Max(2, perSeq * MaxSequences));
        int threads = options.Threads ?? DefaultThreads(info.Parameters);
        var p = new ModelParams(info.Path)
        {
            // One KV stream per sequence: each stream's attention is computed on its own, so a sequence's results do
            // not depend on the others in the batch (a shared stream sums over interleaved cells). Flash attention skips
            // masked cells. Each stream holds one cell more than a sequence may use, for the padding token.
            KVUnified = false,
            FlashAttention = true,
            ContextSize = (uint)((perSeq + 1) * MaxSequences),
            SeqMax = (uint)MaxSequences,
            // llama.cpp reserves its worst-case graph with an output per sequence and asserts when that exceeds the
            // batch; the engine's own calls stay within BatchSize.
            BatchSize = (uint)Math.Max(BatchSize, MaxSequences),
            UBatchSize = (uint)Math.Max(BatchSize, MaxSequences),
            Threads = threads,
            BatchThreads = threads,
        };
        foreach (var a in options.Adapters)
            if (!float.IsFinite(a.Scale)) throw new ConfigException($"model '{name}': adapter {a.Path} has scale {a.Scale}");
        // Adapters first: a bad adapter file must fail before a native context exists.
        var adapters = options.Adapters.Select(a => (shared.GetAdapter(a.Path), a.Scale)).ToArray();
        LLamaContext context;
        try
        {
            context = shared.Weights.CreateContext(p);
        }
        catch (Exception e) when (e is not ConsortException)
        {
            throw new ConsortException($"model '{name}': llama.cpp could not create a context of {perSeq} tokens x {MaxSequences} sequences ({e.Message})", e);
        }
        if (adapters.Length > 0) context.NativeHandle.SetLoraAdapters(adapters);
        _vocab = shared.Weights.NativeHandle.Vocab.Count;
        KvCache = KvCacheInfo.Of(shared.Weights, MaxSequences, perSeq, (int)context.ContextSize);
        Engine = new LlamaBatchEngine(context, name, MaxSequences, BatchSize, Math.Min(BatchSize, PrefillTokensPerStep), threads, adaptThreads: options.Threads is null)
        {
            PrefixReuse = options.PrefixReuse,
        };
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
            Adapters = options.Adapters.Select(a => new LoraReference(System.IO.Path.GetFullPath(a.Path), a.Scale)).ToList(),
        };
    }

    /// <summary>Upper bound on context tokens per model (sequence length x sequences), far above what fits in memory anyway.</summary>
    public const int MaxTotalContext = Limits.MaxTotalContextTokens;
    /// <summary>Most prompt tokens fed per engine step besides the running sequences' single tokens, so that a long
    /// prompt delays the running sequences by a bounded amount per step instead of stalling them.</summary>
    public const int PrefillTokensPerStep = 256;

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
    /// <summary>The KV cache: sized from <see cref="MaxSequences"/> x <see cref="SequenceLength"/>.</summary>
    public KvCacheInfo KvCache { get; }
    /// <summary>Threads decoding now: the configured count, or (when none is configured) the default or one,
    /// whichever has been faster on this machine's current load.</summary>
    public int Threads => Engine.Threads;
    /// <summary>Counters of batched decoding so far.</summary>
    public LlamaBatchStatistics Statistics => Engine.Statistics;
    /// <summary>True when the GGUF carries a chat template.</summary>
    public bool HasChatTemplate => _shared.Info.HasChatTemplate;
    internal LLamaWeights Weights => _shared.Weights;
    internal LlamaBatchEngine Engine { get; }

    private static int DefaultThreads(long? parameters) =>
        // Thread hand-off costs more than it saves on models of a few million parameters.
        parameters is < 20_000_000 ? 1 : Math.Max(1, Environment.ProcessorCount);

    /// <inheritdoc />
    /// <remarks>Waits for a free slot when all <see cref="MaxSequences"/> are in use.</remarks>
    public async ValueTask<ITokenSequence> StartAsync(IReadOnlyList<int> prompt, CancellationToken cancellationToken = default)
    {
        CheckTokens(prompt, "prompt");
        if (prompt.Count > SequenceLength)
            throw new ConsortException($"model '{Descriptor.Name}': prompt of {prompt.Count} tokens exceeds context of {SequenceLength}");
        ThrowIfDisposed();
        var sw = Stopwatch.StartNew();
        await Engine.ReserveAsync(wait: true, cancellationToken).ConfigureAwait(false);
        var seq = new LlamaTokenSequence(this);
        try
        {
            await Engine.RunAsync([new DecodeJob(DecodeJobKind.Start, seq, [.. prompt]) { HoldsReservation = true }], cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            seq.Dispose();
            throw;
        }
        Usage.Add(prompt.Count, 0, sw.Elapsed);
        return seq;
    }

    /// <inheritdoc />
    public async ValueTask StepAsync(IReadOnlyList<(ITokenSequence Sequence, int Token)> steps, CancellationToken cancellationToken = default)
    {
        if (steps.Count == 0) return;
        var jobs = new DecodeJob[steps.Count];
        var seen = new HashSet<LlamaTokenSequence>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < steps.Count; i++)
        {
            if (steps[i].Sequence is not LlamaTokenSequence s || !ReferenceEquals(s.Owner, this))
                throw new ArgumentException($"step {i}: the sequence does not belong to model '{Descriptor.Name}'");
            s.ThrowIfDisposed();
            if (!seen.Add(s)) throw new ArgumentException($"step {i}: the same sequence appears twice in one step");
            CheckToken(steps[i].Token);
            if (s.Tokens.Count + 1 > SequenceLength)
                throw new ConsortException($"model '{Descriptor.Name}': sequence of {s.Tokens.Count + 1} tokens exceeds context of {SequenceLength}");
            jobs[i] = new DecodeJob(DecodeJobKind.Feed, s, [steps[i].Token]);
        }
        var sw = Stopwatch.StartNew();
        await Engine.RunAsync(jobs, cancellationToken).ConfigureAwait(false);
        Usage.Add(0, steps.Count, sw.Elapsed);
    }

    /// <inheritdoc />
    /// <remarks>Waits for a free slot when all <see cref="MaxSequences"/> are in use; several scores after one prompt
    /// compute the prompt once (the slot keeps it cached).</remarks>
    public async ValueTask<float[]> ScoreAsync(IReadOnlyList<int> prompt, IReadOnlyList<int> continuation, CancellationToken cancellationToken = default)
    {
        CheckTokens(prompt, "prompt");
        if (continuation.Count == 0) return [];
        foreach (var t in continuation) CheckToken(t);
        int total = prompt.Count + continuation.Count - 1; // the last token is scored, not fed
        if (total > SequenceLength)
            throw new ConsortException($"model '{Descriptor.Name}': prompt of {prompt.Count} tokens plus continuation of {continuation.Count} exceeds context of {SequenceLength}");
        ThrowIfDisposed();
        var all = new int[total];
        for (int i = 0; i < prompt.Count; i++) all[i] = prompt[i];
        for (int i = 0; i < continuation.Count - 1; i++) all[prompt.Count + i] = continuation[i];
        var sw = Stopwatch.StartNew();
        await Engine.ReserveAsync(wait: true, cancellationToken).ConfigureAwait(false);
        var job = new DecodeJob(DecodeJobKind.Score, null, all) { Continuation = [.. continuation], ScoreFrom = prompt.Count - 1, HoldsReservation = true };
        await Engine.RunAsync([job], cancellationToken).ConfigureAwait(false);
        Usage.Add(prompt.Count, continuation.Count, sw.Elapsed);
        return job.Scores!;
    }

    // ---- used by sequences ----

    internal async ValueTask AppendAsync(LlamaTokenSequence seq, IReadOnlyList<int> tokens, CancellationToken ct)
    {
        seq.ThrowIfDisposed();
        if (tokens.Count == 0) return;
        foreach (var t in tokens) CheckToken(t);
        if (seq.Tokens.Count + tokens.Count > SequenceLength)
            throw new ConsortException($"model '{Descriptor.Name}': sequence of {seq.Tokens.Count + tokens.Count} tokens exceeds context of {SequenceLength}");
        var sw = Stopwatch.StartNew();
        await Engine.RunAsync([new DecodeJob(DecodeJobKind.Feed, seq, [.. tokens])], ct).ConfigureAwait(false);
        Usage.Add(tokens.Count, 0, sw.Elapsed);
    }

    internal async ValueTask<ITokenSequence> ForkAsync(LlamaTokenSequence seq, CancellationToken ct)
    {
        seq.ThrowIfDisposed();
        var next = seq.Next; // throws before anything is reserved when the sequence has no distribution
        await Engine.ReserveAsync(wait: false, ct).ConfigureAwait(false);
        var copy = new LlamaTokenSequence(this);
        try
        {
            // Shares nothing afterwards: llama.cpp copies the stream, and each copy grows on its own.
            await Engine.RunAsync([new DecodeJob(DecodeJobKind.Fork, copy, []) { Source = seq, HoldsReservation = true }], ct).ConfigureAwait(false);
        }
        catch
        {
            copy.Dispose();
            throw;
        }
        copy.SetNext((float[])next.Logits!.Clone());
        return copy;
    }

    internal async ValueTask RewindAsync(LlamaTokenSequence seq, int length, CancellationToken ct)
    {
        seq.ThrowIfDisposed();
        if (length < 1 || length > seq.Tokens.Count)
            throw new ArgumentOutOfRangeException(nameof(length), $"rewind to {length} tokens: must be 1..{seq.Tokens.Count}");
        if (length == seq.Tokens.Count) return;
        var sw = Stopwatch.StartNew();
        // Drop the last kept token too and feed it again: that recomputes the logits after it.
        await Engine.RunAsync([new DecodeJob(DecodeJobKind.Rewind, seq, [seq.Tokens[length - 1]]) { KeepLength = length }], ct).ConfigureAwait(false);
        Usage.Add(1, 0, sw.Elapsed);
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

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    /// <summary>Frees the context (waiting calls fail) and drops this model's reference to the shared weights.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        Engine.Dispose();
        _shared.Release();
    }
}
