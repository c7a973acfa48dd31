using System.Diagnostics;
using LLama;
using LLama.Native;

namespace Consort.LlamaCpp;

/// <summary>Counters of a model's batched decoding (for benchmarks, tests and reports).</summary>
/// <param name="Steps">Engine steps run (each runs every sequence that has work).</param>
/// <param name="DecodeCalls">llama_decode calls.</param>
/// <param name="DecodedTokens">Tokens decoded, padding excluded.</param>
/// <param name="SequenceSteps">Single-token steps decoded (one per sequence and step).</param>
/// <param name="GroupCalls">llama_decode calls that stepped several sequences at once.</param>
/// <param name="SharedSequenceSteps">Single-token steps decoded in those calls.</param>
/// <param name="MostSequencesInOneCall">The most sequences one llama_decode call stepped.</param>
/// <param name="PaddingTokens">Throw-away tokens added so that no call computes a single row (see <see cref="LlamaBatchEngine"/>).</param>
/// <param name="ReusedPrefixTokens">Prompt tokens taken from cached prefixes instead of being computed.</param>
/// <param name="CopiedPrefixes">Prefixes copied from another slot's KV stream.</param>
public sealed record LlamaBatchStatistics(long Steps, long DecodeCalls, long DecodedTokens, long SequenceSteps, long GroupCalls,
    long SharedSequenceSteps, int MostSequencesInOneCall, long PaddingTokens, long ReusedPrefixTokens, long CopiedPrefixes)
{
    /// <summary>Seconds spent inside llama_decode (the rest of a run's time is the callers' and the engine's own).</summary>
    public double DecodeSeconds { get; init; }
    /// <summary>llama_decode calls made with one thread (the engine measures one thread against all as it goes).</summary>
    public long OneThreadCalls { get; init; }
}

/// <summary>
/// Continuous batching for one llama.cpp context: every call on the model's sequences (start, append, step, score,
/// fork, rewind) becomes a job, and whichever caller is leading runs steps: each step prepares new jobs' slots, decodes
/// one token of every sequence that has exactly one to feed in shared llama_decode calls, and feeds prompts in chunks
/// beside them. A new caller joins at the next step; a finished sequence leaves its slot at once.
/// <para>
/// A sequence's results do not depend on the rest of the batch, bit for bit: every sequence has its own KV stream
/// (llama.cpp's non-unified cache, where each stream's attention is computed apart), flash attention skips masked
/// cells, and no llama_decode call ever computes a single token row or a single output row (llama.cpp's CPU matrix
/// kernels take a different summation path for one row than for several, so a lone row is padded with a throw-away
/// token at the next position, removed right after). Streams only grow and shrink at their end, so cells stay in
/// position order.
/// </para>
/// <para>
/// Prompts reuse cached prefixes: a free slot keeps the tokens it held, and a new prompt takes the free slot that
/// shares its longest prefix (removing only the rest), or copies a longer prefix from another slot's stream
/// (a whole-stream copy, then the tail removed). Prompts that arrive together with a common prefix are computed once.
/// </para>
/// </summary>
internal sealed class LlamaBatchEngine : IDisposable
{
    /// <summary>A copy from another slot must save at least this many tokens over the best in-place reuse.</summary>
    internal const int MinCopyTokens = 8;
    /// <summary>A prompt waits for another prompt being fed when that gives it at least this many more cached tokens.</summary>
    internal const int MinSharedTokens = 8;
    /// <summary>The longest a step waits for a sequence of the previous step to come back.</summary>
    internal const double MaxGatherSeconds = 50e-3;

    private readonly LLamaContext _context;
    private readonly NativeBatch _batch;
    private readonly string _name;
    private readonly int _vocab;
    private readonly SlotState[] _slots;
    private readonly SemaphoreSlim _slotCount;
    private readonly object _lock = new();
    private readonly List<DecodeJob> _queue = [];
    private readonly List<Ticket> _tickets = [];
    private readonly SemaphoreSlim _arrival = new(0, int.MaxValue);
    private readonly SemaphoreSlim _native = new(1, 1);
    private readonly float[] _logProbs;
    private readonly CancellationTokenSource _closing = new();
    private HashSet<LlamaTokenSequence> _expected = [];
    private bool _leading, _disposed;
    private double _stepSeconds;

    private long _steps, _calls, _tokens, _sequenceSteps, _groupCalls, _sharedSteps, _padding, _reused, _copies, _oneThreadCalls;
    private double _decodeSeconds;
    private int _widest;
    // One choice per call width (rows 1-2, 3-4, 5-8, more): a call of one sequence is bound by memory and one of
    // eight by arithmetic, so the best thread count differs, and times per row of different widths do not compare.
    private readonly ThreadChoice[] _threads;
    private int _lastThreads;

    /// <param name="context">The native context (owned from now on).</param>
    /// <param name="name">Model name, for messages.</param>
    /// <param name="slots">Sequences (the context's n_seq_max).</param>
    /// <param name="batchSize">Most tokens per llama_decode call.</param>
    /// <param name="prefillPerStep">Most prompt tokens per step.</param>
    /// <param name="threads">Threads to decode with; with <paramref name="adaptThreads"/>, one thread is tried too and
    /// the faster kept (on a machine busy with other work, threads waiting for each other at every operation of the
    /// graph can make several threads many times slower than one).</param>
    /// <param name="adaptThreads">True to choose between <paramref name="threads"/> and one by measured speed.</param>
    public LlamaBatchEngine(LLamaContext context, string name, int slots, int batchSize, int prefillPerStep, int threads, bool adaptThreads)
    {
        _context = context; _name = name;
        _threads = Enumerable.Range(0, 4).Select(_ => new ThreadChoice(adaptThreads && threads > 1 ? [threads, 1] : [threads])).ToArray();
        _lastThreads = threads;
        BatchSize = batchSize;
        PrefillPerStep = prefillPerStep;
        _vocab = context.NativeHandle.ModelHandle.Vocab.Count;
        _batch = new NativeBatch(batchSize);
        _slots = Enumerable.Range(0, slots).Select(i => new SlotState(i)).ToArray();
        _slotCount = new SemaphoreSlim(slots, slots);
        _logProbs = new float[_vocab];
    }

    /// <summary>Most tokens one llama_decode call gets.</summary>
    public int BatchSize { get; }
    /// <summary>Most prompt tokens fed per step (besides the single-token steps), so that long prompts do not stall the running sequences.</summary>
    public int PrefillPerStep { get; }
    /// <summary>Slots.</summary>
    public int Slots => _slots.Length;
    /// <summary>False: every prompt is computed from its first token (no cached prefix is used).</summary>
    public bool PrefixReuse { get; init; } = true;

    public LlamaBatchStatistics Statistics
    {
        get
        {
            lock (_lock)
                return new LlamaBatchStatistics(_steps, _calls, _tokens, _sequenceSteps, _groupCalls, _sharedSteps, _widest, _padding, _reused, _copies)
                    { DecodeSeconds = _decodeSeconds, OneThreadCalls = _oneThreadCalls };
        }
    }

    // ---- slots ----

    /// <summary>Reserves a slot for a new sequence or score: waits for a free one, or fails at once when <paramref name="wait"/> is false.</summary>
    public async ValueTask ReserveAsync(bool wait, CancellationToken ct)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (wait)
        {
            if (_slotCount.Wait(0)) return;
            // Waiting callers end when the model is disposed, not only when their own token fires.
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, _closing.Token);
            try
            {
                await _slotCount.WaitAsync(linked.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_closing.IsCancellationRequested && !ct.IsCancellationRequested)
            {
                throw new ObjectDisposedException(nameof(LlamaTokenModel));
            }
        }
        else if (!_slotCount.Wait(0))
            throw new ConsortException($"model '{_name}': all {_slots.Length} sequences are in use (raise max_sequences)");
    }

    /// <summary>Frees a sequence's slot (its tokens stay cached). Safe to call twice.</summary>
    public void Release(LlamaTokenSequence seq)
    {
        lock (_lock)
        {
            if (seq.Disposed) return;
            seq.Disposed = true;
            // A sequence whose job is still running gives its slot back when the job ends.
            if (seq.Pending is null) FreeSlotLocked(seq.State, seq);
        }
        _arrival.Release(); // a leader may be waiting for this sequence's next step
    }

    private void FreeSlotLocked(SlotState? slot, object owner)
    {
        if (slot is null || !ReferenceEquals(slot.Owner, owner)) return;
        slot.Owner = null;
        _slotCount.Release();
    }

    // ---- submitting ----

    /// <summary>Runs <paramref name="jobs"/> (batched with every other caller's) and returns when all are finished.</summary>
    public async ValueTask RunAsync(DecodeJob[] jobs, CancellationToken ct)
    {
        var ticket = new Ticket(jobs);
        bool lead;
        lock (_lock)
        {
            if (_disposed)
            {
                foreach (var j in jobs) if (j.HoldsReservation) { j.HoldsReservation = false; _slotCount.Release(); }
                throw new ObjectDisposedException(nameof(LlamaTokenModel));
            }
            foreach (var j in jobs)
            {
                if (j.Sequence is { } s && j.Kind != DecodeJobKind.Start && j.Kind != DecodeJobKind.Fork)
                {
                    if (s.Disposed) throw new ObjectDisposedException(nameof(ITokenSequence));
                    if (s.Pending is not null) throw new InvalidOperationException("a sequence runs one call at a time");
                }
            }
            long now = Stopwatch.GetTimestamp();
            foreach (var j in jobs)
            {
                j.Ticket = ticket;
                if (j.Sequence is { } s)
                {
                    s.Pending = j;
                    if (s.SteppedAt != 0 && j.Kind == DecodeJobKind.Feed && _expected.Contains(s))
                    {
                        double away = Stopwatch.GetElapsedTime(s.SteppedAt, now).TotalSeconds;
                        s.AwaySeconds = s.AwaySeconds == 0 ? away : 0.7 * s.AwaySeconds + 0.3 * away;
                    }
                }
                _queue.Add(j);
            }
            _tickets.Add(ticket);
            lead = !_leading;
            if (lead) _leading = true;
        }
        if (!lead) _arrival.Release();
        using (ct.CanBeCanceled ? ct.Register(() => Cancel(ticket)) : default)
        {
            if (!lead) lead = await ticket.Signal.Task.ConfigureAwait(false);
            if (lead) await LeadAsync(ticket).ConfigureAwait(false);
        }
        ticket.ThrowIfFailed(ct);
    }

    private void Cancel(Ticket ticket)
    {
        lock (_lock)
        {
            foreach (var j in ticket.Jobs)
            {
                if (j.Finished) continue;
                // A job with native state is rolled back by the leader; one that never started just ends.
                if (j.SetUp) j.CancelRequested = true;
                else FinishLocked(j, cancelled: true, error: null);
            }
        }
        _arrival.Release();
    }

    // ---- leading ----

    private async Task LeadAsync(Ticket mine)
    {
        try
        {
            while (true)
            {
                lock (_lock) if (mine.Finished) break;
                await GatherAsync(mine).ConfigureAwait(false);
                await _native.WaitAsync().ConfigureAwait(false);
                try { Step(); }
                finally { _native.Release(); }
            }
        }
        finally
        {
            lock (_lock)
            {
                _leading = false;
                // Someone still waiting takes over (on its own thread); otherwise the next caller leads.
                foreach (var t in _tickets)
                    if (!t.Finished && t.Signal.TrySetResult(true)) { _leading = true; break; }
            }
        }
    }

    /// <summary>Waits (briefly) until every sequence stepped last time has asked for its next step or left, so that
    /// sequences decoding together keep stepping together.</summary>
    private async Task GatherAsync(Ticket mine)
    {
        long start = Stopwatch.GetTimestamp();
        // At least half a step (a latecomer costs the others less than a step of its own would cost it) and long
        // enough for a thread-pool hand-off on a busy machine. A caller that is usually away longer (it steps another
        // model in between, as a fused member does) is waited for as long as it usually takes, within bounds: without
        // that, sequences that fall out of step with each other never get back in step, and each one decodes alone.
        double limit = Math.Clamp(0.5 * _stepSeconds, 300e-6, 10e-3);
        bool yielded = false;
        while (true)
        {
            bool idle = false, missing = false;
            lock (_lock)
            {
                if (mine.Finished || _disposed) return;
                if (mine.Jobs.Any(j => j.CancelRequested)) return;
                if (!yielded)
                    foreach (var slot in _slots)
                        if (slot.Owner is LlamaTokenSequence { Disposed: false, Pending: null }) { idle = true; break; }
                foreach (var s in _expected)
                {
                    if (s.Disposed || s.Pending is not null) continue;
                    missing = true;
                    // Expected back by its last step plus its usual time away (and some slack); but a caller that is
                    // often away for long (a mentor consulted now and then) is not waited for longer than a few steps.
                    double usual = Math.Min(1.5 * s.AwaySeconds + 300e-6, Math.Min(Math.Max(4 * _stepSeconds, 2e-3), MaxGatherSeconds));
                    double due = Stopwatch.GetElapsedTime(start, s.SteppedAt).TotalSeconds + usual;
                    if (due > limit) limit = due;
                }
            }
            // A leader steps on its caller's thread, so a caller stepping alone never gives its thread up. When other
            // sequences are idle and thread-pool work is queued (their callers' continuations, likely), let it run once
            // first: otherwise, with few pool threads, one sequence decodes to its end while the others wait in the queue.
            if (idle && ThreadPool.PendingWorkItemCount > 0)
            {
                yielded = true;
                await Task.Yield();
                continue;
            }
            if (!missing) return;
            double left = limit - Stopwatch.GetElapsedTime(start).TotalSeconds;
            if (left <= 0) return;
            // Timer waits are ~1 ms coarse and a step of a small model is shorter, so short waits poll. But the callers
            // waited for may need a thread-pool thread to come back (their continuations queue behind this one): while
            // work is queued, give the thread back instead of spinning on it, or on a machine with few cores the
            // caller never arrives in time and every sequence steps alone.
            if (left >= 2e-3) await _arrival.WaitAsync(TimeSpan.FromSeconds(left)).ConfigureAwait(false);
            else if (ThreadPool.PendingWorkItemCount > 0) await Task.Yield();
            else Thread.Yield();
        }
    }

    /// <summary>One step: roll back cancelled jobs, set up new ones, decode every single-token job in shared calls,
    /// then feed prompts in chunks. Only the leader calls this.</summary>
    private void Step()
    {
        long t0 = Stopwatch.GetTimestamp();
        List<DecodeJob> work;
        lock (_lock)
        {
            if (_disposed) return;
            work = _queue.Where(j => !j.Finished).ToList();
            _steps++;
        }
        var done = new List<DecodeJob>();
        var failed = new List<(DecodeJob, Exception)>();
        try
        {
            foreach (var j in work)
                if (j.CancelRequested && j.SetUp) { Truncate(j.Slot, j.Origin); done.Add(j); }
            work.RemoveAll(j => j.CancelRequested && j.SetUp);
            SetUp(work, done, failed);
            DecodeSingles(work, failed);
            FeedChunks(work, failed);
        }
        catch (Exception e)
        {
            // Not expected (llama.cpp errors are handled per call): fail what was in this step rather than hang it.
            foreach (var j in work) if (!done.Contains(j) && !failed.Any(f => f.Item1 == j)) failed.Add((j, e));
        }
        lock (_lock)
        {
            var expected = new HashSet<LlamaTokenSequence>();
            foreach (var j in done) FinishLocked(j, cancelled: j.CancelRequested, error: null);
            foreach (var (j, e) in failed) if (!j.Finished) FinishLocked(j, cancelled: false, error: e);
            foreach (var j in work)
            {
                if (j.Finished || !j.SetUp || j.Remaining > 0) continue;
                if (j.WantsLogits)
                {
                    j.Sequence!.SetNext(j.Logits!);
                    expected.Add(j.Sequence);
                    j.Sequence.SteppedAt = Stopwatch.GetTimestamp();
                }
                FinishLocked(j, cancelled: false, error: null);
            }
            _expected = expected;
            double dt = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            _stepSeconds = _stepSeconds == 0 ? dt : 0.8 * _stepSeconds + 0.2 * dt;
        }
    }

    private void FinishLocked(DecodeJob j, bool cancelled, Exception? error)
    {
        if (j.Finished) return; // a model disposed mid-step finishes its jobs before the step does
        j.Finished = true;
        j.Cancelled = cancelled && error is null;
        j.Error = error;
        _queue.Remove(j);
        if (j.Sequence is { } s && ReferenceEquals(s.Pending, j))
        {
            s.Pending = null;
            if (s.Disposed) FreeSlotLocked(s.State, s);
        }
        if (j.Kind == DecodeJobKind.Score && j.Slot >= 0) FreeSlotLocked(_slots[j.Slot], j);
        if (j.HoldsReservation && j.Slot < 0) _slotCount.Release(); // never took the slot it reserved
        j.HoldsReservation = false;
        var t = j.Ticket;
        if (!t.Finished && t.Jobs.All(x => x.Finished))
        {
            t.Finished = true;
            _tickets.Remove(t);
            t.Signal.TrySetResult(false);
        }
    }

    // ---- setting up ----

    private void SetUp(List<DecodeJob> work, List<DecodeJob> done, List<(DecodeJob, Exception)> failed)
    {
        var ops = new List<(DecodeJob Job, int CopyFrom, int Keep)>();
        lock (_lock)
        {
            foreach (var j in work)
            {
                if (j.SetUp || j.Finished) continue;
                switch (j.Kind)
                {
                    case DecodeJobKind.Feed:
                        j.Slot = j.Sequence!.Slot;
                        j.Origin = _slots[j.Slot].Tokens.Count;
                        j.SetUp = true;
                        break;
                    case DecodeJobKind.Rewind:
                        j.Slot = j.Sequence!.Slot;
                        j.Origin = j.KeepLength - 1;
                        ops.Add((j, -1, j.KeepLength - 1));
                        j.SetUp = true;
                        break;
                    case DecodeJobKind.Fork:
                    {
                        // The least useful free slot: the one caching the fewest tokens.
                        var target = _slots.Where(s => s.Owner is null).OrderBy(s => s.Tokens.Count).ThenBy(s => s.Index).First();
                        Take(target, j.Sequence!, j, [.. j.Source!.State!.Tokens]);
                        ops.Add((j, j.Source.Slot, -1));
                        j.SetUp = true;
                        break;
                    }
                    case DecodeJobKind.Start or DecodeJobKind.Score:
                        SetUpPrompt(j, work, ops);
                        break;
                }
            }
        }
        // Native memory operations (metadata only; a cross-stream copy runs inside the next llama_decode, before it computes).
        var h = _context.NativeHandle;
        foreach (var (j, from, keep) in ops)
        {
            try
            {
                if (from >= 0)
                {
                    h.MemorySequenceRemove((LLamaSeqId)j.Slot, -1, -1);
                    h.MemorySequenceCopy((LLamaSeqId)from, (LLamaSeqId)j.Slot, -1, -1);
                }
                Truncate(j.Slot, keep >= 0 ? keep : _slots[j.Slot].Tokens.Count);
                if (j.Kind == DecodeJobKind.Fork) done.Add(j);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                failed.Add((j, e));
            }
        }
        work.RemoveAll(j => j.Kind == DecodeJobKind.Fork || failed.Any(f => f.Item1 == j));
    }

    /// <summary>Chooses a slot for a prompt (under the lock): the free slot sharing the longest prefix, or a copy of a
    /// longer one held by a busy slot; or waits a step when a prompt being fed right now will share more.</summary>
    private void SetUpPrompt(DecodeJob j, List<DecodeJob> work, List<(DecodeJob, int, int)> ops)
    {
        var tokens = j.Tokens;
        // At least one token is fed, since its logits are the result (for a score: from the first scored position).
        int maxReuse = !PrefixReuse ? 0 : j.Kind == DecodeJobKind.Score ? j.ScoreFrom : tokens.Length - 1;
        SlotState? inPlace = null; int inPlaceLen = -1;
        SlotState? source = null; int sourceLen = 0;
        foreach (var s in _slots)
        {
            int c = CommonPrefix(s.Tokens, tokens, maxReuse);
            if (s.Owner is null && c > inPlaceLen) { inPlace = s; inPlaceLen = c; }
            // A slot being rewound this step loses its tail before a copy would run: not a source.
            bool rewinding = s.Owner is LlamaTokenSequence { Pending.Kind: DecodeJobKind.Rewind };
            if (s.Owner is not null && !rewinding && c > sourceLen) { source = s; sourceLen = c; }
        }
        int now = Math.Max(inPlaceLen, sourceLen);
        foreach (var other in work)
        {
            if (other == j || !other.SetUp || other.Finished || other.Remaining == 0 || other.Slot < 0) continue;
            if (other.Kind is DecodeJobKind.Start or DecodeJobKind.Score or DecodeJobKind.Feed
                && FutureCommonPrefix(_slots[other.Slot].Tokens, other, tokens, maxReuse) >= now + MinSharedTokens)
                return; // set up next step, copying what the other prompt has computed by then
        }
        object owner = (object?)j.Sequence ?? j;
        if (source is not null && sourceLen >= inPlaceLen + MinCopyTokens)
        {
            var target = _slots.Where(s => s.Owner is null)
                .OrderBy(s => CommonPrefix(s.Tokens, tokens, maxReuse)).ThenBy(s => s.Tokens.Count).ThenBy(s => s.Index).First();
            Take(target, owner, j, source.Tokens.GetRange(0, sourceLen));
            ops.Add((j, source.Index, sourceLen));
            j.Next = j.Reused = sourceLen;
            _copies++;
        }
        else
        {
            Take(inPlace!, owner, j, inPlace!.Tokens.GetRange(0, inPlaceLen));
            ops.Add((j, -1, inPlaceLen));
            j.Next = j.Reused = inPlaceLen;
        }
        _reused += j.Reused;
        j.Origin = j.Reused;
        if (j.Kind == DecodeJobKind.Score) j.Scores = new float[j.Continuation!.Length];
        j.SetUp = true;
    }

    /// <summary>Gives <paramref name="slot"/> to a new owner, holding <paramref name="tokens"/> (a new list: the previous
    /// owner, disposed, keeps its own).</summary>
    private static void Take(SlotState slot, object owner, DecodeJob job, List<int> tokens)
    {
        slot.Owner = owner;
        slot.Tokens = tokens;
        if (owner is LlamaTokenSequence s) { s.State = slot; s.TokenList = tokens; }
        job.Slot = slot.Index;
        job.HoldsReservation = false;
    }

    private static int CommonPrefix(List<int> cached, int[] tokens, int max)
    {
        int n = Math.Min(Math.Min(cached.Count, tokens.Length), max);
        int i = 0;
        while (i < n && cached[i] == tokens[i]) i++;
        return i;
    }

    /// <summary>Common prefix of <paramref name="tokens"/> with what the slot of <paramref name="other"/> will hold once its job is fed.</summary>
    private static int FutureCommonPrefix(List<int> held, DecodeJob other, int[] tokens, int max)
    {
        int i = CommonPrefix(held, tokens, max);
        if (i < held.Count) return i;
        for (int k = other.Next; k < other.Tokens.Length && i < max && i < tokens.Length && other.Tokens[k] == tokens[i]; k++) i++;
        return i;
    }

    /// <summary>Drops the slot's cells from position <paramref name="keep"/> on.</summary>
    private void Truncate(int slot, int keep)
    {
        var list = _slots[slot].Tokens;
        _context.NativeHandle.MemorySequenceRemove((LLamaSeqId)slot, keep, -1);
        if (list.Count > keep) list.RemoveRange(keep, list.Count - keep);
    }

    // ---- decoding ----

    /// <summary>Every job with one token left, in slot order: consecutive slots share a call (llama.cpp puts the
    /// streams of one call into one micro-batch only when their ids are consecutive).</summary>
    private void DecodeSingles(List<DecodeJob> work, List<(DecodeJob, Exception)> failed)
    {
        var singles = work.Where(j => j.SetUp && j.Remaining == 1).OrderBy(j => j.Slot).ToList();
        int start = 0;
        while (start < singles.Count)
        {
            int end = start + 1;
            while (end < singles.Count && singles[end].Slot == singles[end - 1].Slot + 1) end++;
            // A run longer than the batch is split evenly, so that no call gets a lone row.
            int run = end - start, calls = (run + BatchSize - 1) / BatchSize;
            for (int c = 0; c < calls; c++)
            {
                int a = start + run * c / calls, b = start + run * (c + 1) / calls;
                DecodeGroup(singles.GetRange(a, b - a), failed);
            }
            start = end;
        }
    }

    private void DecodeGroup(List<DecodeJob> group, List<(DecodeJob, Exception)> failed)
    {
        _batch.Clear();
        var index = new int[group.Count];
        for (int i = 0; i < group.Count; i++)
        {
            var j = group[i];
            index[i] = _batch.Add(j.Tokens[j.Next], _slots[j.Slot].Tokens.Count, j.Slot, true);
        }
        int pad = -1;
        if (group.Count == 1)
        {
            var j = group[0];
            pad = _slots[j.Slot].Tokens.Count + 1;
            _batch.Add(j.Tokens[j.Next], pad, j.Slot, true);
        }
        if (!TryDecode(group, failed, group.Count, pad >= 0 ? 1 : 0)) { if (pad >= 0) RemoveFrom(group[0].Slot, pad); return; }
        if (pad >= 0) RemoveFrom(group[0].Slot, pad);
        var h = _context.NativeHandle;
        for (int i = 0; i < group.Count; i++) Accept(group[i], 1, h.GetLogitsIth(index[i]), null);
        lock (_lock)
        {
            _sequenceSteps += group.Count;
            if (group.Count > 1) { _groupCalls++; _sharedSteps += group.Count; }
            _widest = Math.Max(_widest, group.Count);
        }
    }

    /// <summary>Prompt chunks, one call each (a call of several streams would be split by llama.cpp anyway), within
    /// the step's prefill budget; the first pending prompt always advances.</summary>
    private void FeedChunks(List<DecodeJob> work, List<(DecodeJob, Exception)> failed)
    {
        int budget = PrefillPerStep;
        bool any = false;
        foreach (var j in work)
        {
            if (!j.SetUp || j.Finished || j.Remaining < 2 || failed.Any(f => f.Item1 == j)) continue;
            if (any && budget < 2) break;
            int n = Math.Min(Math.Min(j.Remaining, BatchSize), any ? budget : Math.Max(budget, 2));
            FeedChunk(j, n, failed);
            budget -= n;
            any = true;
        }
    }

    private void FeedChunk(DecodeJob j, int n, List<(DecodeJob, Exception)> failed)
    {
        _batch.Clear();
        int pos0 = _slots[j.Slot].Tokens.Count;
        bool last = j.Next + n == j.Tokens.Length;
        // Outputs: none, or at least two (one output row takes llama.cpp's single-row path).
        int firstOut = n; // chunk index of the first output
        if (j.Kind == DecodeJobKind.Score)
        {
            int from = j.ScoreFrom - pos0;
            if (from < n) firstOut = Math.Min(Math.Max(from, 0), n - 2);
        }
        else if (last) firstOut = n - 2;
        var outputs = new int[n];
        for (int k = 0; k < n; k++)
        {
            int bi = _batch.Add(j.Tokens[j.Next + k], pos0 + k, j.Slot, k >= firstOut);
            outputs[k] = k >= firstOut ? bi : -1;
        }
        if (!TryDecode([j], failed, n, 0)) return;
        Accept(j, n, default, outputs);
    }

    /// <summary>Records <paramref name="n"/> fed tokens of <paramref name="j"/> and takes what their outputs give.</summary>
    private void Accept(DecodeJob j, int n, Span<float> singleLogits, int[]? outputs)
    {
        var slot = _slots[j.Slot];
        var h = _context.NativeHandle;
        for (int k = 0; k < n; k++)
        {
            int pos = slot.Tokens.Count;
            Span<float> logits = outputs is null ? singleLogits : outputs[k] >= 0 ? h.GetLogitsIth(outputs[k]) : default;
            slot.Tokens.Add(j.Tokens[j.Next]);
            j.Next++;
            if (logits.IsEmpty) continue;
            if (j.Kind == DecodeJobKind.Score)
            {
                if (pos < j.ScoreFrom) continue;
                TokenMath.LogSoftmax(logits, _logProbs);
                j.Scores![pos - j.ScoreFrom] = _logProbs[j.Continuation![pos - j.ScoreFrom]];
            }
            else if (j.Remaining == 0) j.Logits = logits.ToArray();
        }
    }

    private bool TryDecode(IReadOnlyList<DecodeJob> jobs, List<(DecodeJob, Exception)> failed, int tokens, int padding)
    {
        int rows = tokens + padding;
        var choice = _threads[rows <= 2 ? 0 : rows <= 4 ? 1 : rows <= 8 ? 2 : 3];
        int threads = choice.Pick();
        // The first call after a switch of thread count runs on cold threads, whichever width it has: not counted.
        bool warm = threads == _lastThreads;
        _lastThreads = threads;
        var h = _context.NativeHandle;
        if (h.BatchThreads != threads) { h.GenerationThreads = threads; h.BatchThreads = threads; }
        long t0 = Stopwatch.GetTimestamp();
        var r = (DecodeResult)NativeDecode.Decode(_context, _batch);
        // Judged on the steady state: calls of a few rows (sequences stepping), per row.
        double took = Stopwatch.GetElapsedTime(t0).TotalSeconds;
        if (rows <= 16 && warm) choice.Record(threads, took / rows);
        lock (_lock)
        {
            _calls++;
            _decodeSeconds += took;
            if (threads == 1) _oneThreadCalls++;
            _tokens += tokens;
            _padding += padding;
        }
        if (r == DecodeResult.Ok) return true;
        var e = new ConsortException($"model '{_name}': llama_decode failed ({r})");
        foreach (var j in jobs)
        {
            // llama.cpp restores the cache after a failed call; drop anything this job fed in earlier steps too.
            Truncate(j.Slot, j.Origin);
            failed.Add((j, e));
        }
        return false;
    }

    private void RemoveFrom(int slot, int pos) => _context.NativeHandle.MemorySequenceRemove((LLamaSeqId)slot, pos, -1);

    /// <summary>Threads in use for decoding now.</summary>
    public int Threads => _lastThreads;

    /// <summary>
    /// Picks among thread counts (all cores first, then one) by measured time per row (exponential moving averages).
    /// A count is measured in runs of a few calls, and the engine does not record the first call after a switch
    /// (the other threads are cold then: counting that call made all cores look slower than they are on an idle
    /// machine); the first count is kept unless another is faster by a margin, and the others are re-tried now and
    /// then (less often the slower they were) in case the machine's load changed. Used by the leader only.
    /// </summary>
    private sealed class ThreadChoice(int[] options)
    {
        private const int Run = 3;           // calls per measuring run: one warm-up, two counted
        private const double Margin = 0.9;   // another count must take under 90% of the first's time per row
        private readonly double[] _ema = new double[options.Length];
        private readonly int[] _samples = new int[options.Length];
        private long _sinceExplore;
        private int _exploring = -1, _runLeft;

        public int Pick()
        {
            if (options.Length == 1) return options[0];
            if (_runLeft > 0) { _runLeft--; return options[_exploring]; }
            if (Array.FindIndex(_samples, c => c < 2) is var cold and >= 0) return Start(cold);
            int best = 0;
            for (int i = 1; i < options.Length; i++) if (_ema[i] < Margin * _ema[best]) best = i;
            int other = best == 0 ? 1 : 0;
            // Re-try the other count every 32 calls, less often the slower it was (up to every 2048 calls).
            long every = (long)Math.Clamp(32 * _ema[other] / Math.Max(_ema[best], 1e-12), 32, 2048);
            if (++_sinceExplore >= every) { _sinceExplore = 0; return Start(other); }
            return options[best];
        }

        private int Start(int option)
        {
            _exploring = option;
            _runLeft = Run - 1;
            return options[option];
        }

        public void Record(int threads, double secondsPerRow)
        {
            int i = Array.IndexOf(options, threads);
            if (i < 0) return;
            _ema[i] = _samples[i]++ == 0 ? secondsPerRow : 0.8 * _ema[i] + 0.2 * secondsPerRow;
        }
    }

    /// <summary>Fails every waiting job and frees the context once no step runs.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            var e = new ObjectDisposedException(nameof(LlamaTokenModel));
            foreach (var j in _queue.ToList()) FinishLocked(j, cancelled: false, error: e);
        }
        _closing.Cancel();
        _arrival.Release();
        _native.Wait();
        try
        {
            _context.Dispose();
            _batch.Dispose();
        }
        finally
        {
            _native.Release(); // a leader about to step finds the engine disposed
        }
    }
}
