using System.Diagnostics;
using System.Numerics.Tensors;

namespace Consort.Methods.Logit;

/// <summary>How <see cref="FusedTokenModel"/> combines its members' next-token distributions.</summary>
public enum FusionCombine
{
    /// <summary>Weighted mixture of probabilities: p(v) = sum_i w_i p_i(v) (weights normalized to sum 1).</summary>
    [OptionValue("prob", "probability", "mixture")]
    Prob,
    /// <summary>Weighted product of experts: p(v) ∝ exp(sum_i w_i log p_i(v)).</summary>
    [OptionValue("logprob", "log_prob", "product")]
    LogProb,
}

/// <summary>
/// A token model whose next-token distribution is a weighted combination of several member models that
/// share one vocabulary. Each fused sequence holds one sequence per member; members decode in parallel,
/// so a fused step costs about the slowest member's step, not the sum. Fused models compose (a member may
/// itself be fused) and can be scored like any token model.
/// </summary>
public sealed class FusedTokenModel : ITokenModel
{
    private static readonly SemaphoreSlim StartGate = new(1, 1);
    private static readonly AsyncLocal<bool> InsideStart = new();

    /// <summary>Creates a fusion; members must share a vocabulary (checked by size here, by hash in the method).</summary>
    public FusedTokenModel(string name, IReadOnlyList<ITokenModel> members, IReadOnlyList<double> weights, FusionCombine combine)
        : this(name, members, new WeightedCombiner(CheckWeights(name, members, weights, combine), combine))
    {
    }

    private static double[] CheckWeights(string name, IReadOnlyList<ITokenModel> members, IReadOnlyList<double> weights, FusionCombine combine)
    {
        if (weights.Count != members.Count) throw new ConfigException($"fusion '{name}': {weights.Count} weights for {members.Count} models");
        if (weights.Any(w => w < 0 || !double.IsFinite(w))) throw new ConfigException($"fusion '{name}': weights must be finite and non-negative, got [{string.Join(", ", weights)}]");
        double sum = weights.Sum();
        if (sum <= 0) throw new ConfigException($"fusion '{name}': weights sum to zero");
        // A mixture needs weights summing to 1; a product of experts takes them as given (they act as inverse temperatures).
        return combine == FusionCombine.Prob ? weights.Select(w => w / sum).ToArray() : weights.ToArray();
    }

    /// <summary>Creates a token model whose next-token distribution is <paramref name="combiner"/>'s combination of the members'.</summary>
    public FusedTokenModel(string name, IReadOnlyList<ITokenModel> members, ILogitCombiner combiner)
    {
        if (members.Count == 0) throw new ArgumentException("no members");
        int vocab = members[0].Tokenizer.VocabularySize;
        foreach (var m in members)
            if (m.Tokenizer.VocabularySize != vocab)
                throw new ConfigException($"fusion '{name}': '{m.Descriptor.Name}' has {m.Tokenizer.VocabularySize} tokens but '{members[0].Descriptor.Name}' has {vocab}");
        Members = members;
        Combiner = combiner;
        var ctx = members.Select(m => m.Descriptor.ContextSize).Where(c => c > 0).DefaultIfEmpty(0).Min();
        Descriptor = new ModelDescriptor
        {
            Name = name,
            // Over top-k members the fused distribution is approximate: planning sees top-k access (the smallest k), so a
            // method that needs exact full distributions refuses it.
            Access = ModelAccess.Text | (members.All(m => m.DistributionKind == DistributionKind.FullLogits) ? ModelAccess.FullLogits : ModelAccess.TopKLogprobs),
            TopK = members.All(m => m.DistributionKind == DistributionKind.FullLogits) ? null : members.Where(m => m.Descriptor.TopK is not null).Select(m => m.Descriptor.TopK).Min(),
            Vocabulary = members[0].Descriptor.Vocabulary,
            ContextSize = ctx,
            Architecture = "fusion",
            Parameters = members.All(m => m.Descriptor.Parameters is not null) ? members.Sum(m => m.Descriptor.Parameters!.Value) : null,
        };
    }

    /// <summary>The member models.</summary>
    public IReadOnlyList<ITokenModel> Members { get; }
    /// <summary>How the members' distributions are combined.</summary>
    public ILogitCombiner Combiner { get; }
    /// <summary>Weights (or signed coefficients) in member order (weights normalized for <see cref="FusionCombine.Prob"/>).</summary>
    public IReadOnlyList<double> Weights => Combiner switch
    {
        WeightedCombiner w => w.Weights,
        ArithmeticCombiner a => a.Coefficients,
        _ => [],
    };
    /// <summary>How distributions are combined (signed arithmetic is a product of experts).</summary>
    public FusionCombine Combine => Combiner is WeightedCombiner w ? w.Mode : FusionCombine.LogProb;
    /// <inheritdoc />
    public ModelDescriptor Descriptor { get; }
    /// <inheritdoc />
    public ITokenizer Tokenizer => Members[0].Tokenizer;
    /// <inheritdoc />
    public DistributionKind DistributionKind => DistributionKind.FullLogits;
    /// <inheritdoc />
    public UsageMeter Usage { get; } = new();

    /// <inheritdoc />
    public async ValueTask<ITokenSequence> StartAsync(IReadOnlyList<int> prompt, CancellationToken cancellationToken = default)
    {
        var sw = Stopwatch.StartNew();
        var stats = new MemberStats[Members.Count];
        var seqs = new ITokenSequence?[Members.Count];
        // A fused start holds one member's sequence slot while it waits for the others'. Two fused starts
        // waiting on each other's slots would deadlock, so fused starts take turns (re-entrant for nested fusions).
        bool entered = false;
        if (!InsideStart.Value)
        {
            await StartGate.WaitAsync(cancellationToken).ConfigureAwait(false);
            entered = true;
            InsideStart.Value = true;
        }
        try
        {
            await ForEachMemberAsync(async i =>
            {
                var t = Stopwatch.StartNew();
                seqs[i] = await Members[i].StartAsync(prompt, cancellationToken).ConfigureAwait(false);
                stats[i].Add(prompt.Count, 0, t.Elapsed);
            }).ConfigureAwait(false);
        }
        catch
        {
            foreach (var s in seqs) s?.Dispose();
            throw;
        }
        finally
        {
            if (entered)
            {
                InsideStart.Value = false;
                StartGate.Release();
            }
        }
        var fused = new FusedSequence(this, seqs!, stats);
        Usage.Add(prompt.Count, 0, sw.Elapsed);
        return fused;
    }

    /// <inheritdoc />
    public async ValueTask StepAsync(IReadOnlyList<(ITokenSequence Sequence, int Token)> steps, CancellationToken cancellationToken = default)
    {
        if (steps.Count == 0) return;
        var sw = Stopwatch.StartNew();
        var fused = steps.Select((s, i) => s.Sequence as FusedSequence is { } f && ReferenceEquals(f.Owner, this)
            ? f : throw new ArgumentException($"step {i}: the sequence does not belong to fusion '{Descriptor.Name}'")).ToArray();
        await StepMembersAsync(async i =>
        {
            var t = Stopwatch.StartNew();
            var memberSteps = new (ITokenSequence, int)[steps.Count];
            for (int j = 0; j < steps.Count; j++) memberSteps[j] = (fused[j].MemberSequences[i], steps[j].Token);
            await Members[i].StepAsync(memberSteps, cancellationToken).ConfigureAwait(false);
            var elapsed = t.Elapsed;
            foreach (var f in fused) f.Stats[i].Add(0, 1, elapsed);
        }).ConfigureAwait(false);
        foreach (var f in fused) f.Recompute();
        Usage.Add(0, steps.Count, sw.Elapsed);
    }

    /// <inheritdoc />
    public async ValueTask<float[]> ScoreAsync(IReadOnlyList<int> prompt, IReadOnlyList<int> continuation, CancellationToken cancellationToken = default)
    {
        if (continuation.Count == 0) return [];
        var sw = Stopwatch.StartNew();
        float[] result;
        if (Combiner is WeightedCombiner { Mode: FusionCombine.Prob } mix && Members.All(m => m.DistributionKind == DistributionKind.FullLogits))
        {
            // A mixture's probability of a token needs only each member's probability of that token.
            var member = new float[Members.Count][];
            await ForEachMemberAsync(async i => member[i] = await Members[i].ScoreAsync(prompt, continuation, cancellationToken).ConfigureAwait(false)).ConfigureAwait(false);
            result = new float[continuation.Count];
            for (int t = 0; t < result.Length; t++)
                result[t] = (float)MixLogProb(member, t, mix.Weights);
        }
        else
        {
            // A product (or arithmetic, or a top-k union) renormalizes over the vocabulary: decode step by step.
            using var seq = await StartAsync(prompt, cancellationToken).ConfigureAwait(false);
            result = new float[continuation.Count];
            for (int t = 0; t < continuation.Count; t++)
            {
                result[t] = seq.Next.LogProbabilities()[continuation[t]];
                if (t + 1 < continuation.Count) await seq.AppendAsync([continuation[t]], cancellationToken).ConfigureAwait(false);
            }
        }
        Usage.Add(prompt.Count, continuation.Count, sw.Elapsed);
        return result;
    }

    /// <summary>log(sum_i w_i exp(lp_i[t])) computed stably.</summary>
    internal static double MixLogProb(float[][] memberLogProbs, int t, IReadOnlyList<double> weights)
    {
        double max = double.NegativeInfinity;
        for (int i = 0; i < memberLogProbs.Length; i++)
            if (weights[i] > 0) max = Math.Max(max, memberLogProbs[i][t]);
        if (double.IsNegativeInfinity(max)) return double.NegativeInfinity;
        double s = 0;
        for (int i = 0; i < memberLogProbs.Length; i++)
            if (weights[i] > 0) s += weights[i] * Math.Exp(memberLogProbs[i][t] - max);
        return max + Math.Log(s);
    }

    /// <summary>Combines member log-probabilities into logits of the fused distribution.</summary>
    public static float[] CombineLogProbs(IReadOnlyList<float[]> memberLogProbs, IReadOnlyList<double> weights, FusionCombine combine)
    {
        int n = memberLogProbs[0].Length;
        var result = new float[n];
        if (combine == FusionCombine.LogProb)
        {
            for (int i = 0; i < memberLogProbs.Count; i++)
                if (weights[i] != 0) TensorPrimitives.MultiplyAdd(memberLogProbs[i], (float)weights[i], result, result);
            return result;
        }
        // Mixture: log sum_i w_i p_i(v), with a per-token max for stability; vectorized, since it runs every decode step.
        var max = new float[n];
        Array.Fill(max, float.NegativeInfinity);
        for (int i = 0; i < memberLogProbs.Count; i++)
            if (weights[i] > 0) TensorPrimitives.Max(max, memberLogProbs[i], max);
        var acc = new float[n];
        var term = new float[n];
        for (int i = 0; i < memberLogProbs.Count; i++)
        {
            if (weights[i] <= 0) continue;
            TensorPrimitives.Subtract(memberLogProbs[i], max, term);
            TensorPrimitives.Exp(term, term);
            TensorPrimitives.MultiplyAdd(term, (float)weights[i], acc, acc);
        }
        TensorPrimitives.Log(acc, result);
        TensorPrimitives.Add(result, max, result);
        // Tokens every member rules out (-inf everywhere) stay impossible instead of becoming NaN.
        for (int v = 0; v < n; v++)
            if (float.IsNegativeInfinity(max[v]) || float.IsNaN(result[v])) result[v] = float.NegativeInfinity;
        return result;
    }

    /// <summary>Runs <paramref name="work"/> for every member at once: member 0 on the calling thread, the rest on
    /// the thread pool, because native decoding blocks its thread.</summary>
    internal Task ForEachMemberAsync(Func<int, Task> work)
    {
        if (Members.Count == 1) return work(0);
        var tasks = new Task[Members.Count];
        for (int i = 1; i < tasks.Length; i++)
        {
            int k = i;
            tasks[i] = Task.Run(() => work(k));
        }
        tasks[0] = work(0);
        return Task.WhenAll(tasks);
    }

    // Per-step scheduling: running members on separate threads saves the slower member's time only when
    // cores are free; on a busy machine the thread hand-offs cost more than a tiny model's step. So the fused
    // model times both ways (exponential moving averages) and mostly uses the faster, re-trying the other
    // now and then in case the machine's load changed.
    private readonly object _modeGate = new();
    private readonly double[] _stepTicks = [0, 0]; // [sequential, parallel]
    private readonly int[] _stepSamples = [0, 0];
    private long _steps;

    /// <summary>How many decode steps ran with members in parallel and one after the other.</summary>
    public (long Parallel, long Sequential) StepModes => (_parallelSteps, _steps - _parallelSteps);
    private long _parallelSteps;

    /// <summary>Runs one decode step of every member, in parallel or one after the other, whichever has been faster.</summary>
    internal async Task StepMembersAsync(Func<int, Task> work)
    {
        if (Members.Count == 1) { await work(0).ConfigureAwait(false); return; }
        bool parallel;
        lock (_modeGate)
        {
            long n = _steps++;
            if (_stepSamples[0] < 4 || _stepSamples[1] < 4) parallel = (n & 1) == 1;  // warm up both
            else
            {
                bool best = _stepTicks[1] <= _stepTicks[0];
                parallel = n % 64 == 0 ? !best : best;                               // explore now and then
            }
        }
        long start = Stopwatch.GetTimestamp();
        if (parallel)
        {
            Interlocked.Increment(ref _parallelSteps);
            await ForEachMemberAsync(work).ConfigureAwait(false);
        }
        else
        {
            for (int i = 0; i < Members.Count; i++) await work(i).ConfigureAwait(false);
        }
        double ticks = Stopwatch.GetTimestamp() - start;
        lock (_modeGate)
        {
            int m = parallel ? 1 : 0;
            _stepTicks[m] = _stepSamples[m]++ == 0 ? ticks : 0.8 * _stepTicks[m] + 0.2 * ticks;
        }
    }

    /// <summary>Members are owned by their own models; nothing to free here.</summary>
    public void Dispose() { }
}

/// <summary>Work one member did for one fused sequence.</summary>
public struct MemberStats
{
    /// <summary>Prompt tokens the member processed.</summary>
    public long InputTokens;
    /// <summary>Tokens the member decoded step by step.</summary>
    public long OutputTokens;
    /// <summary>Time the member spent.</summary>
    public TimeSpan Elapsed;

    /// <summary>Adds work.</summary>
    public void Add(long input, long output, TimeSpan elapsed)
    {
        InputTokens += input; OutputTokens += output; Elapsed += elapsed;
    }
}

/// <summary>A fused sequence: one sequence per member, and the combined next-token distribution.</summary>
public sealed class FusedSequence : ITokenSequence
{
    private TokenDistribution _next = null!;
    private bool _disposed;

    internal FusedSequence(FusedTokenModel owner, ITokenSequence[] members, MemberStats[] stats)
    {
        Owner = owner; MemberSequences = members; Stats = stats;
        Recompute();
    }

    internal FusedTokenModel Owner { get; }
    /// <summary>The members' sequences, in member order.</summary>
    public IReadOnlyList<ITokenSequence> MemberSequences { get; }
    /// <summary>Per-member work done for this sequence (for traces).</summary>
    public MemberStats[] Stats { get; }
    /// <inheritdoc />
    public ITokenModel Model => Owner;
    /// <inheritdoc />
    public IReadOnlyList<int> Tokens => MemberSequences[0].Tokens;
    /// <inheritdoc />
    public TokenDistribution Next => _next;

    /// <summary>Steps whose distribution came from some member's top-k log-probabilities only (approximate).</summary>
    public int ApproximateSteps { get; private set; }

    internal void Recompute()
    {
        var (logits, approximate) = Owner.Combiner.Combine(MemberSequences.Select(s => s.Next).ToArray());
        if (approximate) ApproximateSteps++;
        bool any = false;
        foreach (var l in logits)
            if (l > float.NegativeInfinity && !float.IsNaN(l)) { any = true; break; }
        if (!any)
            throw new ConsortException($"'{Owner.Descriptor.Name}': the combination rules out every next token (after {Tokens.Count} tokens); lower the members' negative coefficients or the plausibility threshold");
        _next = TokenDistribution.FromLogits(logits);
    }

    /// <inheritdoc />
    public async ValueTask AppendAsync(IReadOnlyList<int> tokens, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (tokens.Count == 0) return;
        await Owner.StepMembersAsync(async i =>
        {
            var t = Stopwatch.StartNew();
            await MemberSequences[i].AppendAsync(tokens, cancellationToken).ConfigureAwait(false);
            Stats[i].Add(0, tokens.Count, t.Elapsed);
        }).ConfigureAwait(false);
        Recompute();
        Owner.Usage.Add(0, tokens.Count, TimeSpan.Zero);
    }

    /// <inheritdoc />
    public async ValueTask<ITokenSequence> ForkAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var copies = new ITokenSequence?[MemberSequences.Count];
        try
        {
            await Owner.ForEachMemberAsync(async i => copies[i] = await MemberSequences[i].ForkAsync(cancellationToken).ConfigureAwait(false)).ConfigureAwait(false);
        }
        catch
        {
            foreach (var c in copies) c?.Dispose();
            throw;
        }
        return new FusedSequence(Owner, copies!, new MemberStats[copies.Length]);
    }

    /// <inheritdoc />
    public async ValueTask RewindAsync(int length, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        await Owner.ForEachMemberAsync(async i => await MemberSequences[i].RewindAsync(length, cancellationToken).ConfigureAwait(false)).ConfigureAwait(false);
        Recompute();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var s in MemberSequences) s.Dispose();
    }
}
