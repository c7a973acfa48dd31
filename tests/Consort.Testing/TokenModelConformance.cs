namespace Consort.Testing;

/// <summary>
/// The contract every <see cref="ITokenModel"/> implementation keeps (local llama.cpp, endpoints, fused models, the
/// test kit's table model): subclass it in a test project and return the implementation from <see cref="CreateModel"/>;
/// every test below then runs against it.
/// </summary>
public abstract class TokenModelConformance
{
    /// <summary>A fresh model (disposed by the test).</summary>
    protected abstract ITokenModel CreateModel();

    /// <summary>Text the model's tokenizer encodes (the prompt of the tests).</summary>
    protected virtual string Prompt => "Once upon a time";

    /// <summary>Largest allowed difference of log-probabilities between paths that must agree.</summary>
    protected virtual double Tolerance => 1e-4;

    /// <summary>The prompt as token ids (at least two); endpoints whose tokenizer maps a text to one piece override it.</summary>
    protected virtual int[] PromptIds(ITokenModel m)
    {
        var ids = m.Tokenizer.Encode(Prompt, addBos: m.Tokenizer.Bos is not null);
        Assert.True(ids.Length >= 2, "the prompt must encode to at least two tokens");
        return ids;
    }

    private void AssertSame(TokenDistribution a, TokenDistribution b, string what)
    {
        Assert.Equal(a.Kind, b.Kind);
        var la = a.LogProbabilities();
        var lb = b.LogProbabilities();
        Assert.Equal(la.Length, lb.Length);
        int top = a.ArgMax();
        Assert.True(top == b.ArgMax() || Math.Abs(la[top] - lb[b.ArgMax()]) <= Tolerance, $"{what}: different top token ({top} vs {b.ArgMax()})");
        double worst = 0;
        var ids = a.Kind == DistributionKind.TopKLogprobs ? a.TopIds!.AsEnumerable() : Enumerable.Range(0, la.Length);
        foreach (var i in ids) worst = Math.Max(worst, Math.Abs(la[i] - lb[i]));
        Assert.True(worst <= Tolerance, $"{what}: log-probabilities differ by {worst}");
    }

    /// <summary>The distribution after a prompt covers the vocabulary and is normalized.</summary>
    [Fact]
    public async Task Start_gives_a_normalized_distribution_over_the_vocabulary()
    {
        using var m = CreateModel();
        using var s = await m.StartAsync(PromptIds(m));
        Assert.Equal(m.DistributionKind, s.Next.Kind);
        Assert.Equal(m.Tokenizer.VocabularySize, s.Next.VocabularySize);
        var lp = s.Next.LogProbabilities();
        Assert.Equal(m.Tokenizer.VocabularySize, lp.Length);
        if (s.Next.Kind == DistributionKind.FullLogits)
            Assert.InRange(lp.Sum(x => Math.Exp(x)), 0.999, 1.001);
        else
        {
            Assert.NotEmpty(s.Next.TopIds!);
            Assert.All(s.Next.TopLogprobs!, x => Assert.True(x <= 1e-6));
            Assert.Equal(s.Next.TopLogprobs!.OrderByDescending(x => x), s.Next.TopLogprobs!);
        }
        Assert.Equal(PromptIds(m), s.Tokens);
    }

    /// <summary>Rewinding a longer sequence to the prompt gives the prompt's own distribution.</summary>
    [Fact]
    public async Task Rewind_equals_a_fresh_start()
    {
        using var m = CreateModel();
        var ids = PromptIds(m);
        using var fresh = await m.StartAsync(ids);
        using var longer = await m.StartAsync(ids);
        await longer.AppendAsync([fresh.Next.ArgMax()]);
        await longer.AppendAsync([longer.Next.ArgMax()]);
        await longer.RewindAsync(ids.Length);
        Assert.Equal(ids, longer.Tokens);
        AssertSame(fresh.Next, longer.Next, "rewind");
    }

    /// <summary>A fork continues like its source and is independent of it.</summary>
    [Fact]
    public async Task Fork_then_append_equals_the_source_and_is_independent()
    {
        using var m = CreateModel();
        var ids = PromptIds(m);
        using var a = await m.StartAsync(ids);
        using var b = await a.ForkAsync();
        AssertSame(a.Next, b.Next, "fork");
        int t = a.Next.ArgMax();
        await a.AppendAsync([t]);
        await b.AppendAsync([t]);
        AssertSame(a.Next, b.Next, "fork, then the same token");
        var before = b.Next.LogProbabilities().ToArray();
        await a.AppendAsync([a.Next.ArgMax()]);
        Assert.Equal(ids.Length + 1, b.Tokens.Count);
        var after = b.Next.LogProbabilities();
        Assert.Equal(before, after);
    }

    /// <summary>One batched step of two sequences equals stepping each alone.</summary>
    [Fact]
    public async Task Batched_step_equals_single_steps()
    {
        using var m = CreateModel();
        var ids = PromptIds(m);
        using var a = await m.StartAsync(ids);
        using var b = await m.StartAsync(ids[..^1]);
        using var a1 = await m.StartAsync(ids);
        using var b1 = await m.StartAsync(ids[..^1]);
        int ta = a.Next.ArgMax(), tb = b.Next.ArgMax();
        await m.StepAsync([(a, ta), (b, tb)]);
        await a1.AppendAsync([ta]);
        await b1.AppendAsync([tb]);
        AssertSame(a1.Next, a.Next, "batched step, first sequence");
        AssertSame(b1.Next, b.Next, "batched step, second sequence");
    }

    /// <summary>Scoring a continuation gives the log-probabilities stepping would.</summary>
    [Fact]
    public async Task Scoring_equals_stepping()
    {
        using var m = CreateModel();
        var ids = PromptIds(m);
        var prompt = ids[..2];
        var continuation = ids[2..];
        if (continuation.Length == 0) continuation = [ids[1]];
        var scored = await m.ScoreAsync(prompt, continuation);
        Assert.Equal(continuation.Length, scored.Length);
        using var s = await m.StartAsync(prompt);
        for (int i = 0; i < continuation.Length; i++)
        {
            var lp = s.Next.LogProbabilities()[continuation[i]];
            if (s.Next.Kind == DistributionKind.FullLogits || s.Next.TopIds!.Contains(continuation[i]))
                Assert.True(Math.Abs(lp - scored[i]) <= Math.Max(Tolerance, 1e-3), $"token {i}: stepped {lp}, scored {scored[i]}");
            await s.AppendAsync([continuation[i]]);
        }
    }

    /// <summary>Disposed sequences free their slots: many more sequences than a model holds at once, one after the other.</summary>
    [Fact]
    public async Task Disposed_sequences_free_their_slots()
    {
        using var m = CreateModel();
        var ids = PromptIds(m);
        for (int i = 0; i < 40; i++)
        {
            using var s = await m.StartAsync(ids);
            Assert.NotNull(s.Next);
        }
    }

    /// <summary>A cancelled token stops a start.</summary>
    [Fact]
    public async Task Cancelled_start_throws()
    {
        using var m = CreateModel();
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => (await m.StartAsync(PromptIds(m), cts.Token)).Dispose());
    }

    /// <summary>Decoding the encoded prompt gives the prompt back (a leading space allowed, as SentencePiece adds one).</summary>
    [Fact]
    public void Tokenizer_round_trips_the_prompt()
    {
        using var m = CreateModel();
        var text = m.Tokenizer.Decode(m.Tokenizer.Encode(Prompt));
        Assert.Equal(Prompt, text.StartsWith(' ') && !Prompt.StartsWith(' ') ? text[1..] : text);
    }
}
