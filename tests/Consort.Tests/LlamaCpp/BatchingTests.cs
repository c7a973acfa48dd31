using Consort.Decoding;
using Consort.LlamaCpp;
using Consort.Testing;
using Microsoft.Extensions.AI;
using Xunit;

namespace Consort.Tests.LlamaCpp;

/// <summary>
/// Continuous batching in the llama.cpp token model: concurrent callers share llama_decode calls, and what each gets is
/// exactly (bit for bit) what it gets alone.
/// </summary>
public sealed class BatchingTests
{
    private static readonly string[] Prompts =
    [
        "Once upon a time", "The cat sat on the mat and", "Lily and Tom went to the park. They", "One day, a big dog",
        "Tim had a red ball.", "The sun was shining and the birds", "Mom said, \"Be careful!\"", "There was a little boat",
    ];

    private static LlamaTokenModel Load(int maxSequences = 8, int batchSize = 512, int context = 256) =>
        LlamaModelFactory.LoadTokenModel(new LlamaModelOptions { Path = TestPaths.Stories260K, ContextSize = context, MaxSequences = maxSequences, BatchSize = batchSize });

    /// <summary>Greedy decoding by hand: the logits after the prompt and after each fed token.</summary>
    private static async Task<List<float[]>> Greedy(ITokenModel m, string prompt, int steps, Func<int, Task>? between = null, CancellationToken ct = default)
    {
        using var seq = await m.StartAsync(m.Tokenizer.Encode(prompt, addBos: true), ct);
        var rows = new List<float[]> { (float[])seq.Next.Logits!.Clone() };
        for (int i = 0; i < steps; i++)
        {
            if (between is not null) await between(i);
            await seq.AppendAsync([seq.Next.ArgMax()], ct);
            rows.Add((float[])seq.Next.Logits!.Clone());
        }
        return rows;
    }

    private static void AssertSameRows(List<float[]> expected, List<float[]> actual, string what)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
            Assert.True(Same(expected[i], actual[i]), $"{what}: logits after step {i} differ (max {MaxDiff(expected[i], actual[i]):g3})");
    }

    private static bool Same(float[] a, float[] b) => a.AsSpan().SequenceEqual(b);

    private static float MaxDiff(float[] a, float[] b)
    {
        float w = 0;
        for (int i = 0; i < a.Length; i++) w = Math.Max(w, Math.Abs(a[i] - b[i]));
        return w;
    }

    [Fact]
    public async Task SameSequence_AloneAndAmongSevenOthers_BitForBitLogits()
    {
        using var m = Load();
        var alone = new List<List<float[]>>();
        foreach (var p in Prompts) alone.Add(await Greedy(m, p, 30));
        var before = m.Statistics;
        for (int round = 0; round < 2; round++)
        {
            var together = await Task.WhenAll(Prompts.Select(p => Task.Run(() => Greedy(m, p, 30))));
            for (int i = 0; i < Prompts.Length; i++) AssertSameRows(alone[i], together[i], $"round {round}, '{Prompts[i]}'");
        }
        var s = m.Statistics;
        // Batched for real: steps of several sequences shared llama_decode calls.
        Assert.True(s.GroupCalls > before.GroupCalls, $"no call stepped several sequences ({s})");
        Assert.True(s.MostSequencesInOneCall >= 4, $"at most {s.MostSequencesInOneCall} sequences in one call");
        long shared = s.SharedSequenceSteps - before.SharedSequenceSteps, steps = s.SequenceSteps - before.SequenceSteps;
        Assert.True(shared >= steps / 4, $"only {shared} of {steps} steps in shared calls ({s})");
    }

    [Fact]
    public async Task ChatClient_GreedyAndSeeded_SameTokensAloneAndAmongSeven()
    {
        using var m = Load();
        var chat = new LlamaChatClient(m);
        async Task<GenerationResult> Generate(string prompt, ChatOptions o)
        {
            GenerationResult? r = null;
            await foreach (var ev in chat.GenerateAsync([new ChatMessage(ChatRole.User, prompt)], o))
                if (ev.Result is not null) r = ev.Result;
            r!.Sequence.Dispose();
            return r;
        }
        foreach (var options in new[]
        {
            new ChatOptions { MaxOutputTokens = 40, Temperature = 0 },
            new ChatOptions { MaxOutputTokens = 40, Temperature = 0.9f, Seed = 1234 },
            new ChatOptions { MaxOutputTokens = 40, Temperature = 0.7f, TopP = 0.9f, Seed = 99, StopSequences = ["."] },
        })
        {
            var alone = await Generate(Prompts[0], options);
            var others = Prompts.Skip(1).Select((p, i) => Task.Run(() => Generate(p, new ChatOptions { MaxOutputTokens = 20 + 5 * i, Temperature = 0.8f, Seed = i })));
            var mine = Task.Run(() => Generate(Prompts[0], options));
            await Task.WhenAll(others.Append(mine));
            var together = await mine;
            Assert.Equal(alone.Tokens, together.Tokens);
            Assert.Equal(alone.Text, together.Text);
            Assert.Equal(alone.Logprobs, together.Logprobs);
        }
    }

    [Fact]
    public async Task SequencesJoinAndLeaveMidDecode_OthersUnchanged()
    {
        using var m = Load(maxSequences: 4);
        var refA = await Greedy(m, Prompts[0], 60);
        var refB = await Greedy(m, Prompts[1], 15);
        var refC = await Greedy(m, Prompts[2], 30);
        var refD = await Greedy(m, Prompts[3], 20);
        var bJoin = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var cJoin = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var bLeft = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var a = Task.Run(() => Greedy(m, Prompts[0], 60, i =>
        {
            if (i == 10) bJoin.TrySetResult();
            if (i == 20) cJoin.TrySetResult();
            return Task.CompletedTask;
        }));
        var b = Task.Run(async () => { await bJoin.Task; var r = await Greedy(m, Prompts[1], 15); bLeft.TrySetResult(); return r; });
        var c = Task.Run(async () => { await cJoin.Task; return await Greedy(m, Prompts[2], 30); });
        // D takes the slot B leaves, while A and C are still decoding.
        var d = Task.Run(async () => { await bLeft.Task; return await Greedy(m, Prompts[3], 20); });
        await Task.WhenAll(a, b, c, d);
        AssertSameRows(refA, await a, "A");
        AssertSameRows(refB, await b, "B (joined at A's step 10)");
        AssertSameRows(refC, await c, "C (joined at A's step 20)");
        AssertSameRows(refD, await d, "D (joined when B left)");
    }

    [Fact]
    public async Task CancellingOneSequence_LeavesTheOthersUntouched_AndFreesItsSlot()
    {
        using var m = Load(maxSequences: 4);
        var refs = new List<List<float[]>>();
        for (int i = 0; i < 3; i++) refs.Add(await Greedy(m, Prompts[i], 40));
        using var cts = new CancellationTokenSource();
        var victim = Task.Run(() => Greedy(m, Prompts[3], 200, i => { if (i == 10) cts.Cancel(); return Task.CompletedTask; }, cts.Token));
        var others = Enumerable.Range(0, 3).Select(i => Task.Run(() => Greedy(m, Prompts[i], 40))).ToArray();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => victim);
        for (int i = 0; i < 3; i++) AssertSameRows(refs[i], await others[i], $"sequence {i}");
        // All four slots are free again: four sequences start without waiting.
        var started = new List<ITokenSequence>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        for (int i = 0; i < 4; i++) started.Add(await m.StartAsync([1, 400 + i], timeout.Token));
        foreach (var s in started) s.Dispose();
    }

    [Fact]
    public async Task CancellingALongPromptMidPrefill_RollsBack()
    {
        // Batch size 16 and a 200-token prompt: the prompt is fed over several steps, the cancellation lands between them.
        using var m = Load(maxSequences: 2, batchSize: 16);
        var prompt = Enumerable.Range(0, 200).Select(i => 3 + (i * 37) % 500).ToArray();
        var expected = (float[])(await StartAndRead(m, prompt)).Clone();
        for (int attempt = 0; attempt < 5; attempt++)
        {
            using var cts = new CancellationTokenSource();
            var run = Task.Run(async () => { using var s = await m.StartAsync(prompt, cts.Token); });
            await Task.Delay(2 * attempt);
            cts.Cancel();
            try { await run; } catch (OperationCanceledException) { }
        }
        // Whatever was left cached, a fresh start of the same prompt still gives the same logits, and a long one fits.
        Assert.True(Same(expected, await StartAndRead(m, prompt)));
        using var full = await m.StartAsync(Enumerable.Repeat(5, 256).ToArray());
        Assert.Equal(256, full.Tokens.Count);
    }

    private static async Task<float[]> StartAndRead(ITokenModel m, int[] prompt)
    {
        using var s = await m.StartAsync(prompt);
        return (float[])s.Next.Logits!.Clone();
    }

    [Fact]
    public async Task PrefixReuse_GivesTheLogitsOfAFreshPrefill()
    {
        using var fresh = Load(maxSequences: 1);
        using var m = Load(maxSequences: 4);
        var shots = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. ";
        string[] questions = ["One day, she saw", "Her mom said", "The dog ran", "At night, the stars"];
        var prompts = questions.Select(q => m.Tokenizer.Encode(shots + q, addBos: true)).ToArray();
        var expected = new List<float[]>();
        foreach (var p in prompts) expected.Add(await StartAndRead(fresh, p));

        // In place: each start takes the freed slot that still holds the shared few-shot prefix.
        for (int i = 0; i < prompts.Length; i++)
            Assert.True(Same(expected[i], await StartAndRead(m, prompts[i])), $"in-place reuse, prompt {i}");
        var s1 = m.Statistics;
        Assert.True(s1.ReusedPrefixTokens >= 3 * (m.Tokenizer.Encode(shots, addBos: true).Length - 2), $"reused only {s1.ReusedPrefixTokens} tokens");

        // Copied: the prefix lives in a running sequence (all free slots hold something else).
        using var holder = await m.StartAsync(prompts[0]);
        for (int k = 1; k < 4; k++) { using var other = await m.StartAsync(Enumerable.Repeat(400 + k, 30).ToArray()); }
        var seqs = new List<ITokenSequence>();
        for (int i = 1; i < prompts.Length; i++)
        {
            seqs.Add(await m.StartAsync(prompts[i]));
            Assert.True(Same(expected[i], seqs[^1].Next.Logits!), $"copied prefix, prompt {i}");
        }
        Assert.True(m.Statistics.CopiedPrefixes > s1.CopiedPrefixes, "no prefix was copied from the running sequence");
        // The copies decode on their own and match a fresh sequence step by step.
        foreach (var (s, i) in seqs.Select((s, i) => (s, i + 1)))
        {
            using var f = await fresh.StartAsync(prompts[i]);
            for (int t = 0; t < 5; t++)
            {
                int tok = s.Next.ArgMax();
                await s.AppendAsync([tok]);
                await f.AppendAsync([tok]);
                Assert.True(f.Next.Logits!.AsSpan().SequenceEqual(s.Next.Logits!), $"copied prefix, prompt {i}, step {t}");
            }
            s.Dispose();
        }
    }

    [Fact]
    public async Task ScoringSeveralChoicesAfterOneQuestion_ComputesTheQuestionOnce_SameScores()
    {
        using var fresh = Load(maxSequences: 1);
        using var m = Load(maxSequences: 4);
        var question = m.Tokenizer.Encode("Once upon a time, there was a little girl named Lily. She loved to", addBos: true);
        string[] choices = [" play outside.", " eat apples.", " sing songs with her mom.", " read."];
        var conts = choices.Select(c => m.Tokenizer.Encode(c)).ToArray();
        var expected = new List<float[]>();
        foreach (var c in conts) expected.Add(await fresh.ScoreAsync(question, c));
        var before = m.Statistics;
        // Concurrently, as a likelihood scorer asks: the question is computed once, the others copy it.
        var scores = await Task.WhenAll(conts.Select(c => Task.Run(async () => await m.ScoreAsync(question, c))));
        for (int i = 0; i < conts.Length; i++) Assert.Equal(expected[i], scores[i]);
        long reused = m.Statistics.ReusedPrefixTokens - before.ReusedPrefixTokens;
        Assert.True(reused >= 3 * (question.Length - 1), $"reused {reused} tokens, expected the question ({question.Length - 1}) for 3 of 4 choices");
        // And again one after the other (in-place reuse of the cached question).
        for (int i = 0; i < conts.Length; i++) Assert.Equal(expected[i], await m.ScoreAsync(question, conts[i]));
    }

    [Fact]
    public async Task SamePromptStartedEightTimesAtOnce_PrefilledOnce()
    {
        using var m = Load();
        var prompt = m.Tokenizer.Encode("Once upon a time, there was a little girl named Lily. She loved to play outside in the park.", addBos: true);
        var expected = await StartAndRead(m, prompt);
        var before = m.Statistics;
        var seqs = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(async () => await m.StartAsync(prompt))));
        try
        {
            foreach (var s in seqs) Assert.True(Same(expected, s.Next.Logits!));
            long reused = m.Statistics.ReusedPrefixTokens - before.ReusedPrefixTokens;
            Assert.True(reused >= 7 * (prompt.Length - 1), $"reused {reused} tokens of {8 * (prompt.Length - 1)}");
        }
        finally
        {
            foreach (var s in seqs) s.Dispose();
        }
    }

    [Fact]
    public async Task FullCache_RequestsWaitForAFreeSlot()
    {
        using var m = Load(maxSequences: 2);
        var a = await m.StartAsync([1, 400]);
        var b = await m.StartAsync([1, 401]);
        var c = m.StartAsync([1, 402]).AsTask();
        var score = m.ScoreAsync([1, 403], [404, 405]).AsTask();
        await Task.Delay(300);
        Assert.False(c.IsCompleted, "a third sequence started with two slots in use");
        Assert.False(score.IsCompleted, "a score ran with two slots in use");
        a.Dispose();
        await Task.WhenAny(c, score).WaitAsync(TimeSpan.FromSeconds(30));
        b.Dispose();
        using var cs = await c.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(2, (await score.WaitAsync(TimeSpan.FromSeconds(30))).Length);
        Assert.Equal([1, 402], cs.Tokens);
        // A waiting start gives up when cancelled, and takes no slot.
        using var d = await m.StartAsync([1, 406]);
        using var cts = new CancellationTokenSource(200);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await m.StartAsync([1, 407], cts.Token));
    }

    [Fact]
    public async Task DisposingTheModel_EndsWaitingCallers()
    {
        var m = Load(maxSequences: 1);
        var a = await m.StartAsync([1, 400]);
        var waiting = m.StartAsync([1, 401]).AsTask();
        await Task.Delay(100);
        Assert.False(waiting.IsCompleted);
        m.Dispose();
        await Assert.ThrowsAsync<ObjectDisposedException>(() => waiting.WaitAsync(TimeSpan.FromSeconds(30)));
        a.Dispose(); // after the model: harmless
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await a.AppendAsync([5]));
    }

    [Theory]
    [InlineData(2, 8)]
    [InlineData(3, 7)]
    [InlineData(4, 16)]
    public async Task SequencesOutnumberingTheBatch_NoNativeAssert_SameLogits(int batchSize, int sequences)
    {
        using var reference = Load(maxSequences: 1);
        using var m = Load(maxSequences: sequences, batchSize: batchSize);
        Assert.Equal(batchSize, m.BatchSize);
        var prompts = Enumerable.Range(0, sequences).Select(i => m.Tokenizer.Encode(Prompts[i % Prompts.Length] + new string('!', i / Prompts.Length), addBos: true)).ToArray();
        var expected = new List<List<float[]>>();
        foreach (var p in prompts) expected.Add(await GreedyIds(reference, p, 12));
        // One explicit StepAsync over all sequences (more than the batch holds), and the same through concurrent callers.
        var seqs = new List<ITokenSequence>();
        foreach (var p in prompts) seqs.Add(await m.StartAsync(p));
        try
        {
            for (int t = 0; t < 12; t++)
            {
                await m.StepAsync(seqs.Select(s => (s, s.Next.ArgMax())).ToList());
                for (int i = 0; i < seqs.Count; i++) Assert.True(expected[i][t + 1].AsSpan().SequenceEqual(seqs[i].Next.Logits!), $"sequence {i}, step {t}");
            }
        }
        finally
        {
            foreach (var s in seqs) s.Dispose();
        }
        var together = await Task.WhenAll(prompts.Select(p => Task.Run(() => GreedyIds(m, p, 12))));
        for (int i = 0; i < sequences; i++) AssertSameRows(expected[i], together[i], $"concurrent sequence {i}");
    }

    private static async Task<List<float[]>> GreedyIds(ITokenModel m, int[] prompt, int steps)
    {
        using var seq = await m.StartAsync(prompt);
        var rows = new List<float[]> { (float[])seq.Next.Logits!.Clone() };
        for (int i = 0; i < steps; i++)
        {
            await seq.AppendAsync([seq.Next.ArgMax()]);
            rows.Add((float[])seq.Next.Logits!.Clone());
        }
        return rows;
    }

    [Fact]
    public void KvCache_SizedFromSequencesTimesContext()
    {
        using var m = Load(maxSequences: 3, context: 200);
        var kv = m.KvCache;
        Assert.Equal(3, kv.Sequences);
        Assert.Equal(200, kv.TokensPerSequence);
        Assert.True(kv.Cells >= 3 * 201, $"{kv.Cells} cells");
        Assert.Equal(3 * 256, kv.Cells); // each stream rounded up to 256 cells
        // A context of 256 needs one cell more for the padding token: 512 per stream.
        using var m256 = Load(maxSequences: 2, context: 256);
        Assert.Equal(KvCacheInfo.Plan(2, 256, kv.BytesPerToken), m256.KvCache);
        Assert.Equal(2 * 512, m256.KvCache.Cells);
        // stories260K: 5 layers, 4 KV heads of width 8, keys and values in F16.
        Assert.Equal(5 * (32 + 32) * 2, kv.BytesPerToken);
        Assert.Equal(KvCacheInfo.Plan(3, 200, kv.BytesPerToken), kv);
        Assert.Contains("3 sequences x 200 tokens", kv.ToString());
    }

    [Fact]
    public void BatchSizeBelowTwo_IsAConfigError()
    {
        var e = Assert.Throws<ConfigException>(() => Load(batchSize: 1));
        Assert.Contains("'batch size' is 1; allowed: 2..", e.Message);
    }
}
