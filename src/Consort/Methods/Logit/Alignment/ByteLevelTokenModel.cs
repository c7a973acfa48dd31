using System.Diagnostics;
using System.Text;

namespace Consort.Methods.Logit.Alignment;

/// <summary>
/// A token model seen one byte at a time: the next-byte distribution is the model's own token distribution marginalized
/// over every tokenization of the text so far (a beam of them), so models with different tokenizers become models over
/// one byte vocabulary (<see cref="ByteVocabulary"/>) and can be fused, scored in bits per byte and decoded together.
/// </summary>
/// <remarks>
/// A hypothesis is a committed token sequence T plus the bytes r of the next token read so far; its weight is
/// P(T) · P(next token starts with r | T). The next byte b extends r (tokens still consistent with r·b) or, when r is
/// itself a token t, commits t and starts a new token with b; the second case needs the model's distribution after T·t,
/// computed for the hypotheses worth it (batched, one step per branch). The probability of b is the total weight after
/// b over the total before, so each byte distribution sums to one whatever the beam keeps: pruning only makes the model
/// slightly weaker, never unnormalized. A prompt is tokenized canonically except its last token, whose bytes go through
/// the same marginalization (token healing), so a prompt that ends inside a long token does not force a boundary there.
/// Each member sequence needs up to 2 x <see cref="Beam"/> sequences of the inner model at once.
/// </remarks>
public sealed class ByteLevelTokenModel : ITokenModel
{
    /// <summary>Wraps <paramref name="inner"/> (full logits, a tokenizer whose pieces are known).</summary>
    /// <param name="inner">The model; it must give full next-token distributions.</param>
    /// <param name="beam">Most tokenization hypotheses kept (and most branches computed) per byte.</param>
    /// <param name="prune">Hypotheses and branches weighing less than this fraction of the best are dropped.</param>
    public ByteLevelTokenModel(ITokenModel inner, int beam = 4, double prune = 1e-4)
    {
        ArgumentNullException.ThrowIfNull(inner);
        if (inner.DistributionKind != DistributionKind.FullLogits)
            throw new ConfigException($"model '{inner.Descriptor.Name}' gives only top-{inner.Descriptor.TopK?.ToString() ?? "k"} logprobs; byte-level alignment needs its full next-token distribution");
        if (beam < 1) throw new ConfigException($"byte-level alignment: beam must be at least 1, got {beam}");
        if (!(prune is >= 0 and < 1)) throw new ConfigException($"byte-level alignment: prune must be in [0, 1), got {prune}");
        Inner = inner; Beam = beam; LogPrune = prune > 0 ? Math.Log(prune) : double.NegativeInfinity;
        Table = TokenPieceTable.For(inner.Tokenizer);
        var d = inner.Descriptor;
        Descriptor = d with { Access = ModelAccess.Text | ModelAccess.FullLogits, Vocabulary = ByteVocabulary.Identity, TopK = null, WeightsPath = null };
    }

    /// <summary>The wrapped model.</summary>
    public ITokenModel Inner { get; }
    /// <summary>Its pieces.</summary>
    public TokenPieceTable Table { get; }
    /// <summary>Most hypotheses kept per byte.</summary>
    public int Beam { get; }
    internal double LogPrune { get; }
    /// <inheritdoc />
    public ModelDescriptor Descriptor { get; }
    /// <inheritdoc />
    public ITokenizer Tokenizer => ByteVocabulary.Instance;
    /// <inheritdoc />
    public DistributionKind DistributionKind => DistributionKind.FullLogits;
    /// <inheritdoc />
    public UsageMeter Usage { get; } = new();
    /// <summary>Inner decode steps spent on branches (a measure of the alignment's cost).</summary>
    public long InnerSteps => Interlocked.Read(ref _innerSteps);
    private long _innerSteps;
    /// <summary>Times the beam lost every tokenization of the text and a sequence started over from the canonical one.</summary>
    public long Resyncs => Interlocked.Read(ref ResyncCount);
    internal long ResyncCount;

    /// <inheritdoc />
    public async ValueTask<ITokenSequence> StartAsync(IReadOnlyList<int> prompt, CancellationToken cancellationToken = default)
    {
        if (prompt.Count == 0) throw new ArgumentException("prompt must not be empty", nameof(prompt));
        var sw = Stopwatch.StartNew();
        var seq = await ByteSequence.CreateAsync(this, prompt, cancellationToken).ConfigureAwait(false);
        Usage.Add(prompt.Count, 0, sw.Elapsed);
        return seq;
    }

    /// <inheritdoc />
    public async ValueTask StepAsync(IReadOnlyList<(ITokenSequence Sequence, int Token)> steps, CancellationToken cancellationToken = default)
    {
        if (steps.Count == 0) return;
        var sw = Stopwatch.StartNew();
        var seqs = steps.Select((s, i) => s.Sequence is ByteSequence b && ReferenceEquals(b.Owner, this)
            ? b : throw new ArgumentException($"step {i}: the sequence does not belong to '{Descriptor.Name}'")).ToArray();
        for (int i = 0; i < seqs.Length; i++) seqs[i].Advance(steps[i].Token);
        var lost = seqs.Where(s => s.NeedsResync).ToList();
        foreach (var s in lost) await s.ResyncOrBranchAsync(cancellationToken).ConfigureAwait(false);
        await BranchAsync(seqs.Except(lost).ToList(), cancellationToken).ConfigureAwait(false);
        foreach (var s in seqs) s.Recompute();
        Usage.Add(0, steps.Count, sw.Elapsed);
    }

    /// <inheritdoc />
    public async ValueTask<float[]> ScoreAsync(IReadOnlyList<int> prompt, IReadOnlyList<int> continuation, CancellationToken cancellationToken = default)
    {
        using var seq = await StartAsync(prompt, cancellationToken).ConfigureAwait(false);
        var result = new float[continuation.Count];
        for (int t = 0; t < continuation.Count; t++)
        {
            result[t] = seq.Next.Logits![continuation[t]];
            if (t + 1 < continuation.Count) await seq.AppendAsync([continuation[t]], cancellationToken).ConfigureAwait(false);
        }
        return result;
    }

    /// <summary>Computes the branches of every hypothesis worth one, for several sequences in one inner step.</summary>
    internal async Task BranchAsync(IReadOnlyList<ByteSequence> seqs, CancellationToken ct)
    {
        var plans = new List<(ByteSequence.Hyp Hyp, int Token, double LogW)>();
        foreach (var s in seqs) s.PlanBranches(plans);
        if (plans.Count == 0) return;
        var forks = new ITokenSequence?[plans.Count];
        try
        {
            int made = 0;
            for (; made < plans.Count; made++)
            {
                // A model whose sequence slots are all taken (by other concurrent sequences) gets fewer branches this
                // step: the lost weight only makes this byte's estimate coarser, its distribution stays normalized.
                try { forks[made] = await plans[made].Hyp.Seq.ForkAsync(ct).ConfigureAwait(false); }
                catch (ConsortException) { break; }
            }
            plans.RemoveRange(made, plans.Count - made);
            if (made == 0) return;
            var steps = new (ITokenSequence, int)[made];
            for (int i = 0; i < made; i++) steps[i] = (forks[i]!, plans[i].Token);
            await Inner.StepAsync(steps, ct).ConfigureAwait(false);
        }
        catch
        {
            foreach (var f in forks) f?.Dispose();
            throw;
        }
        Interlocked.Add(ref _innerSteps, plans.Count);
        for (int i = 0; i < plans.Count; i++)
            plans[i].Hyp.Branches.Add(new ByteSequence.Branch(forks[i]!, new DistStats(Table, forks[i]!.Next), plans[i].LogW));
    }

    /// <summary>The inner model belongs to its owner.</summary>
    public void Dispose() { }
}

/// <summary>A next-token distribution of the inner model laid out in piece order: cumulative sums, first-byte masses, the end mass.</summary>
internal sealed class DistStats
{
    public DistStats(TokenPieceTable table, TokenDistribution next)
    {
        var lp = next.LogProbabilities();
        int n = table.Count;
        var p = new double[n];
        double total = 0, end = 0;
        for (int j = 0; j < n; j++) total += p[j] = Math.Exp(lp[table.TokenAt(j)]);
        foreach (var e in table.EndTokens) end += Math.Exp(lp[e]);
        total += end;
        if (!(total > 0)) throw new ConsortException("byte-level alignment: the model gave no probability to any text token");
        Cum = new double[n + 1];
        for (int j = 0; j < n; j++)
        {
            p[j] /= total;
            Cum[j + 1] = Cum[j] + p[j];
            First[table.PieceAt(j)[0]] += p[j];
        }
        End = end / total;
    }

    /// <summary>Cum[j] = probability of the first j tokens in piece order.</summary>
    public double[] Cum { get; }
    /// <summary>Probability that the next token starts with each byte.</summary>
    public double[] First { get; } = new double[256];
    /// <summary>Probability that the text ends here.</summary>
    public double End { get; }

    public double Mass(int lo, int hi) => Cum[hi] - Cum[lo];
}

/// <summary>One byte-level sequence: the hypotheses over the inner model's tokenizations of the bytes so far.</summary>
internal sealed class ByteSequence : ITokenSequence
{
    internal sealed class Hyp(ITokenSequence seq, DistStats dist, double logPT, int lo, int hi, int depth)
    {
        public ITokenSequence Seq = seq;
        public DistStats Dist = dist;
        public double LogPT = logPT;      // log P(T), relative
        public int Lo = lo, Hi = hi, Depth = depth;
        public List<Branch> Branches = [];
        public double Weight => Depth == 0 ? LogPT : LogPT + Math.Log(Dist.Mass(Lo, Hi));
    }

    internal sealed record Branch(ITokenSequence Seq, DistStats Dist, double LogW);

    private readonly List<int> _tokens;
    private List<Hyp> _hyps;
    private TokenDistribution _next = null!;
    private bool _ended, _disposed, _resync;

    private ByteSequence(ByteLevelTokenModel owner, List<int> tokens, List<Hyp> hyps)
    {
        Owner = owner; _tokens = tokens; _hyps = hyps;
    }

    public ByteLevelTokenModel Owner { get; }
    public ITokenModel Model => Owner;
    public IReadOnlyList<int> Tokens => _tokens;
    public TokenDistribution Next => _next;
    /// <summary>Hypotheses alive now (for tests and traces).</summary>
    public int HypothesisCount => _hyps.Count;

    public static async Task<ByteSequence> CreateAsync(ByteLevelTokenModel owner, IReadOnlyList<int> prompt, CancellationToken ct, bool heal = true)
    {
        var table = owner.Table;
        var inner = owner.Inner;
        for (int i = 0; i < prompt.Count; i++)
            if (prompt[i] is < 0 or >= ByteVocabulary.Size || (prompt[i] >= 256 && !(i == 0 && prompt[i] == ByteVocabulary.BosId)))
                throw new ArgumentException($"prompt token {i} ({prompt[i]}) is not a byte (only a leading BOS may be a control id)");
        var bytes = ByteVocabulary.ToBytes(prompt);
        // A byte no token starts with cannot be in any tokenization (and some tokenizers abort on such text).
        foreach (var b in bytes)
            if (!table.CanStartWith(b))
                throw new ConsortException($"model '{inner.Descriptor.Name}' cannot read this prompt: no token of its vocabulary starts with byte 0x{b:X2}");
        var stream = table.SpacePrefix ? [(byte)' ', .. bytes] : bytes;
        // Canonical tokens for the longest whole-character prefix, minus the last one (token healing).
        int valid = ValidUtf8Prefix(bytes);
        var text = Encoding.UTF8.GetString(bytes, 0, valid);
        bool bos = inner.Tokenizer.Bos is not null;
        var ids = text.Length > 0 ? inner.Tokenizer.Encode(text, addBos: bos) : bos ? [inner.Tokenizer.Bos!.Value] : [];
        int head = bos ? 1 : 0;
        var committed = !heal ? ids : ids.Length > head + 1 ? ids[..^1] : ids[..head];
        int done = 0;
        foreach (var t in committed.Skip(head)) done += table.Piece(t).Length;
        if (done > stream.Length || !committed.Skip(head).SelectMany(table.Piece).SequenceEqual(stream.Take(done)))
        {
            committed = ids[..head];   // the tokenizer normalized the text: fall back to feeding every byte
            done = 0;
        }
        if (committed.Length == 0)
            throw new ConsortException($"model '{inner.Descriptor.Name}' has no BOS token and the prompt is too short to start a byte-level sequence");
        var innerSeq = await inner.StartAsync(committed, ct).ConfigureAwait(false);
        var s = new ByteSequence(owner, [.. prompt], [new Hyp(innerSeq, new DistStats(table, innerSeq.Next), 0, 0, table.Count, 0)]);
        try
        {
            for (int i = done; i < stream.Length; i++)
            {
                s.Advance(stream[i], record: false);
                if (s._resync)
                {
                    // The healed tail lost every tokenization: commit the canonical tokens instead.
                    if (!heal) throw new ConsortException($"model '{inner.Descriptor.Name}': no tokenization of the prompt could be followed byte by byte");
                    s._resync = false;
                    s.Dispose();
                    return await CreateAsync(owner, prompt, ct, heal: false).ConfigureAwait(false);
                }
                await owner.BranchAsync([s], ct).ConfigureAwait(false);
            }
            s.Recompute();
        }
        catch
        {
            s.Dispose();
            throw;
        }
        return s;
    }

    private static int ValidUtf8Prefix(byte[] b)
    {
        int n = b.Length;
        // Back off over a trailing incomplete character (at most 3 continuation bytes plus its lead byte).
        for (int back = 0; back < 4 && back <= n; back++)
        {
            int len = n - back;
            try
            {
                new UTF8Encoding(false, true).GetCharCount(b, 0, len);
                return len;
            }
            catch (DecoderFallbackException) { }
        }
        return 0;
    }

    /// <summary>Reads byte <paramref name="token"/>: keeps the hypotheses consistent with it, pruned to the beam.</summary>
    public void Advance(int token, bool record = true)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_ended) throw new InvalidOperationException("the text has ended");
        if (record) _tokens.Add(token);
        if (token == ByteVocabulary.EndId) { _ended = true; return; }
        if (token is < 0 or > 255) throw new ArgumentException($"token {token} is not a byte");
        byte b = (byte)token;
        var table = Owner.Table;
        var next = new List<Hyp>();
        foreach (var h in _hyps)
        {
            var (lo, hi) = h.Depth == 0 ? table.Narrow(0, table.Count, 0, b) : table.Narrow(h.Lo, h.Hi, h.Depth, b);
            if (lo < hi) next.Add(new Hyp(h.Seq, h.Dist, h.LogPT, lo, hi, h.Depth + 1));
            else h.Seq.Dispose();
            foreach (var br in h.Branches)
            {
                var (l2, h2) = table.Narrow(0, table.Count, 0, b);
                if (l2 < h2) next.Add(new Hyp(br.Seq, br.Dist, br.LogW, l2, h2, 1));
                else br.Seq.Dispose();
            }
        }
        if (next.Count == 0)
        {
            _hyps = [];
            if (!table.CanStartWith(b))
                throw new ConsortException($"model '{Owner.Inner.Descriptor.Name}' cannot produce byte 0x{b:X2} (after {_tokens.Count - 1} bytes): no token of its vocabulary starts with it");
            _resync = true;   // the beam lost every tokenization that reads this byte; CreateAsync starts over canonically
            return;
        }
        // Hypotheses that started their pending token at the same byte are merged (weights summed, the heaviest one's
        // state kept): the future is approximated by the dominant path, and the beam spends its places on different
        // token boundaries instead of near-copies of one.
        next.Sort((x, y) => x.Depth != y.Depth ? x.Depth.CompareTo(y.Depth) : y.Weight.CompareTo(x.Weight));
        var merged = new List<Hyp>();
        for (int i = 0; i < next.Count;)
        {
            var rep = next[i];
            double w = rep.Weight, sum = 1;
            int k = i + 1;
            for (; k < next.Count && next[k].Depth == rep.Depth; k++)
            {
                sum += Math.Exp(next[k].Weight - w);
                next[k].Seq.Dispose();
            }
            rep.LogPT += Math.Log(sum);
            merged.Add(rep);
            i = k;
        }
        next = merged;
        next.Sort((x, y) => y.Weight.CompareTo(x.Weight));
        double best = next[0].Weight;
        int keep = 0;
        while (keep < next.Count && keep < Owner.Beam && next[keep].Weight >= best + Owner.LogPrune) keep++;
        for (int i = keep; i < next.Count; i++) next[i].Seq.Dispose();
        next.RemoveRange(keep, next.Count - keep);
        foreach (var h in next) h.LogPT -= best;    // keep weights near zero over long texts
        _hyps = next;
    }

    /// <summary>After <see cref="Advance"/>: starts over from the canonical tokenization when the beam died, else computes the branches.</summary>
    public async Task ResyncOrBranchAsync(CancellationToken ct)
    {
        if (!_resync) { await Owner.BranchAsync([this], ct).ConfigureAwait(false); return; }
        var fresh = await CreateAsync(Owner, _tokens, ct).ConfigureAwait(false);
        _hyps = fresh._hyps;
        fresh._hyps = [];
        _resync = false;
        Interlocked.Increment(ref Owner.ResyncCount);
    }

    /// <summary>True when the beam died and <see cref="ResyncOrBranchAsync"/> must start over.</summary>
    public bool NeedsResync => _resync;

    /// <summary>Adds, for every hypothesis whose pending bytes are a whole token, the branch that commits it (best first, at most the beam).</summary>
    public void PlanBranches(List<(Hyp Hyp, int Token, double LogW)> plans)
    {
        if (_ended || _hyps.Count == 0) return;
        var table = Owner.Table;
        double best = _hyps.Max(h => h.Weight);
        var mine = new List<(Hyp, int, double)>();
        foreach (var h in _hyps)
        {
            if (h.Depth == 0) continue;
            for (int j = h.Lo; j < h.Hi && table.PieceAt(j).Length == h.Depth; j++)
            {
                double logW = h.LogPT + Math.Log(h.Dist.Mass(j, j + 1));
                if (logW >= best + Owner.LogPrune) mine.Add((h, table.TokenAt(j), logW));
            }
        }
        mine.Sort((x, y) => y.Item3.CompareTo(x.Item3));
        plans.AddRange(mine.Take(Owner.Beam));
    }

    /// <summary>The next-byte distribution (over <see cref="ByteVocabulary"/>) from the hypotheses and their branches.</summary>
    public void Recompute()
    {
        var logits = new float[ByteVocabulary.Size];
        if (_ended || _hyps.Count == 0)
        {
            Array.Fill(logits, float.NegativeInfinity);
            logits[ByteVocabulary.EndId] = 0;
            _next = TokenDistribution.FromLogits(logits);
            return;
        }
        var table = Owner.Table;
        var mass = new double[ByteVocabulary.Size];
        double max = _hyps.Max(h => Math.Max(h.LogPT, h.Branches.Count > 0 ? h.Branches.Max(b => b.LogW) : double.NegativeInfinity));
        foreach (var h in _hyps)
        {
            double w = Math.Exp(h.LogPT - max);
            if (h.Depth == 0)
            {
                for (int b = 0; b < 256; b++) mass[b] += w * h.Dist.First[b];
                mass[ByteVocabulary.EndId] += w * h.Dist.End;
            }
            else
            {
                // Tokens longer than the pending bytes vote for their next byte; exact ones are the branches below.
                for (int j = h.Lo; j < h.Hi; j++)
                {
                    var piece = table.PieceAt(j);
                    if (piece.Length > h.Depth) mass[piece[h.Depth]] += w * (h.Dist.Cum[j + 1] - h.Dist.Cum[j]);
                }
            }
            foreach (var br in h.Branches)
            {
                double wb = Math.Exp(br.LogW - max);
                for (int b = 0; b < 256; b++) mass[b] += wb * br.Dist.First[b];
                mass[ByteVocabulary.EndId] += wb * br.Dist.End;
            }
        }
        double total = mass.Sum();
        // Bytes the beam cannot read right now but some token starts with keep a tiny probability: reading one costs
        // about 23 bits and a resync, instead of an infinite loss.
        for (int b = 0; b < 256; b++)
            if (mass[b] == 0 && table.CanStartWith((byte)b)) mass[b] = total * 1e-7;
        total = mass.Sum();
        for (int i = 0; i < logits.Length; i++) logits[i] = mass[i] > 0 ? (float)Math.Log(mass[i] / total) : float.NegativeInfinity;
        _next = TokenDistribution.FromLogits(logits);
    }

    public async ValueTask AppendAsync(IReadOnlyList<int> tokens, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var sw = Stopwatch.StartNew();
        foreach (var t in tokens)
        {
            Advance(t);
            await ResyncOrBranchAsync(cancellationToken).ConfigureAwait(false);
        }
        Recompute();
        Owner.Usage.Add(0, tokens.Count, sw.Elapsed);
    }

    public async ValueTask<ITokenSequence> ForkAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var copies = new List<Hyp>();
        try
        {
            foreach (var h in _hyps)
            {
                var c = new Hyp(await h.Seq.ForkAsync(cancellationToken).ConfigureAwait(false), h.Dist, h.LogPT, h.Lo, h.Hi, h.Depth);
                copies.Add(c);
                foreach (var br in h.Branches)
                    c.Branches.Add(br with { Seq = await br.Seq.ForkAsync(cancellationToken).ConfigureAwait(false) });
            }
        }
        catch
        {
            foreach (var c in copies) { c.Seq.Dispose(); foreach (var br in c.Branches) br.Seq.Dispose(); }
            throw;
        }
        return new ByteSequence(Owner, [.. _tokens], copies) { _next = _next, _ended = _ended };
    }

    public async ValueTask RewindAsync(int length, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (length < 1 || length > _tokens.Count) throw new ArgumentOutOfRangeException(nameof(length), $"rewind to {length} of {_tokens.Count} tokens");
        if (length == _tokens.Count) return;
        // Hypotheses cannot be un-read: start again from the kept bytes.
        var fresh = await CreateAsync(Owner, _tokens.Take(length).ToList(), cancellationToken).ConfigureAwait(false);
        DisposeHyps();
        _hyps = fresh._hyps;
        fresh._hyps = [];
        _tokens.RemoveRange(length, _tokens.Count - length);
        _ended = false;
        _next = fresh._next;
    }

    private void DisposeHyps()
    {
        foreach (var h in _hyps)
        {
            h.Seq.Dispose();
            foreach (var br in h.Branches) br.Seq.Dispose();
        }
        _hyps = [];
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        DisposeHyps();
    }
}
