using Consort.LlamaCpp;
using Consort.Testing;
using Xunit;

namespace Consort.Tests.LlamaCpp;

public sealed class LlamaTokenModelTests(LlamaFixture fx) : IClassFixture<LlamaFixture>
{
    private ITokenModel M => fx.Stories.Tokens!;

    private int[] Prompt(string text) => M.Tokenizer.Encode(text, addBos: true);

    [Fact]
    public void Descriptor_CarriesVocabularyContextAndAccess()
    {
        var d = fx.Stories.Descriptor;
        Assert.Equal("stories260k", d.Name);
        Assert.Equal(512, d.Vocabulary!.Size);
        Assert.Equal(512, d.ContextSize);
        Assert.Equal("llama", d.Architecture);
        Assert.True(d.Access.HasFlag(ModelAccess.FullLogits));
        Assert.Equal(d.Vocabulary, fx.Xs.Descriptor.Vocabulary);
        Assert.Equal(256, fx.Xs.Descriptor.ContextSize); // min(model ctx 256, 2048)
    }

    [Fact]
    public async Task Fork_GivesSameNextDistribution_AndRewindReproducesLogits()
    {
        using var a = await M.StartAsync(Prompt("Once upon a time, there was"));
        await a.AppendAsync(M.Tokenizer.Encode(" a little"));
        var before = (float[])a.Next.Logits!.Clone();
        using var b = await a.ForkAsync();
        Assert.Equal(a.Tokens, b.Tokens);
        AssertClose(before, b.Next.Logits!, 1e-5f);

        // The fork continues on its own: append a token to the fork and compare with the original's path.
        int tok = b.Next.ArgMax();
        await b.AppendAsync([tok]);
        await a.AppendAsync([tok]);
        AssertClose(a.Next.Logits!, b.Next.Logits!, 1e-4f);

        int len = a.Tokens.Count;
        var atLen = (float[])a.Next.Logits!.Clone();
        await a.AppendAsync(M.Tokenizer.Encode(" dog ran far away"));
        Assert.NotEqual(len, a.Tokens.Count);
        await a.RewindAsync(len);
        Assert.Equal(len, a.Tokens.Count);
        AssertClose(atLen, a.Next.Logits!, 1e-4f);
        // Re-append after rewind reproduces the same logits as the first time.
        await a.AppendAsync(M.Tokenizer.Encode(" dog"));
        var again = (float[])a.Next.Logits!.Clone();
        await a.RewindAsync(len);
        await a.AppendAsync(M.Tokenizer.Encode(" dog"));
        AssertClose(again, a.Next.Logits!, 1e-4f);
        // The fork is untouched by the original's rewinds.
        Assert.Equal(len, b.Tokens.Count);
    }

    [Fact]
    public async Task StepAsync_ThreeSequencesBatched_MatchEachAlone()
    {
        string[] texts = ["Once upon a time", "The cat sat", "Lily and Tom went to the park"];
        int[] next = [M.Tokenizer.Encode(" there")[0], M.Tokenizer.Encode(" on")[0], M.Tokenizer.Encode(" and")[0]];
        var alone = new List<float[]>();
        for (int i = 0; i < 3; i++)
        {
            using var s = await M.StartAsync(Prompt(texts[i]));
            await M.StepAsync([(s, next[i])]);
            alone.Add((float[])s.Next.Logits!.Clone());
        }
        var seqs = new List<ITokenSequence>();
        try
        {
            for (int i = 0; i < 3; i++) seqs.Add(await M.StartAsync(Prompt(texts[i])));
            await M.StepAsync(seqs.Select((s, i) => (s, next[i])).ToList());
            for (int i = 0; i < 3; i++)
            {
                AssertClose(alone[i], seqs[i].Next.Logits!, 1e-4f);
                Assert.Equal(next[i], seqs[i].Tokens[^1]);
            }
        }
        finally
        {
            foreach (var s in seqs) s.Dispose();
        }
    }

    [Fact]
    public async Task ScoreAsync_EqualsSumOfStepwiseLogprobs()
    {
        var prompt = Prompt("Once upon a time, there was a little girl");
        var cont = M.Tokenizer.Encode(" named Lily. She loved to play outside.");
        var scores = await M.ScoreAsync(prompt, cont);
        Assert.Equal(cont.Length, scores.Length);
        using var s = await M.StartAsync(prompt);
        double stepwise = 0;
        for (int i = 0; i < cont.Length; i++)
        {
            float lp = s.Next.LogProbabilities()[cont[i]];
            // One batched pass vs one token at a time: llama.cpp's kernels differ slightly in rounding.
            Assert.InRange(Math.Abs(lp - scores[i]), 0, 5e-3);
            stepwise += lp;
            await s.AppendAsync([cont[i]]);
        }
        Assert.InRange(Math.Abs(stepwise - scores.Sum()), 0, 2e-2);
        Assert.True(scores.All(x => x <= 0 && float.IsFinite(x)));
    }

    [Fact]
    public async Task ScoreAsync_LongPromptIsChunkedByBatchSize()
    {
        // Batch size 16 forces the 60-token input through four llama_decode calls.
        using var small = LlamaModelFactory.LoadTokenModel(new LlamaModelOptions { Path = TestPaths.Stories260K, ContextSize = 128, BatchSize = 16, MaxSequences = 1 });
        var text = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball.";
        var all = small.Tokenizer.Encode(text, addBos: true);
        Assert.True(all.Length > 40);
        var a = await small.ScoreAsync(all[..5], all[5..]);
        var b = await M.ScoreAsync(all[..5], all[5..]);
        for (int i = 0; i < a.Length; i++) Assert.InRange(Math.Abs(a[i] - b[i]), 0, 1e-3);
        using var seq = await small.StartAsync(all); // chunked prompt too
        Assert.Equal(all.Length, seq.Tokens.Count);
    }

    [Fact]
    public async Task OversizedPrompt_AndBadTokens_GiveConsortException()
    {
        var tooLong = Enumerable.Repeat(M.Tokenizer.Encode(" the")[0], 600).ToArray();
        var e = await Assert.ThrowsAsync<ConsortException>(async () => await M.StartAsync(tooLong));
        Assert.Contains("prompt of 600 tokens exceeds context of 512", e.Message);
        await Assert.ThrowsAsync<ConsortException>(async () => await M.ScoreAsync(tooLong, [1]));
        var bad = await Assert.ThrowsAsync<ConsortException>(async () => await M.StartAsync([1, 512]));
        Assert.Contains("token id 512", bad.Message);
        await Assert.ThrowsAsync<ConsortException>(async () => await M.StartAsync([1, -3]));
        await Assert.ThrowsAsync<ConsortException>(async () => await M.StartAsync([]));
        using var s = await M.StartAsync([1]);
        await Assert.ThrowsAsync<ConsortException>(async () => await s.AppendAsync([100000]));
        await Assert.ThrowsAsync<ConsortException>(async () => await M.StepAsync([(s, 999)]));
        // Still usable afterwards.
        await s.AppendAsync([400, 401]);
        Assert.Equal(3, s.Tokens.Count);
    }

    [Fact]
    public async Task SlotsAreFreedOnDispose()
    {
        using var m = LlamaModelFactory.LoadTokenModel(new LlamaModelOptions { Path = TestPaths.Stories260K, ContextSize = 64, MaxSequences = 2 });
        for (int round = 0; round < 3; round++)
        {
            using var a = await m.StartAsync([1, 400]);
            using var b = await a.ForkAsync();
            var e = await Assert.ThrowsAsync<ConsortException>(async () => await b.ForkAsync());
            Assert.Contains("all 2 sequences are in use", e.Message);
        }
    }

    [Fact]
    public void Tokenizer_RoundTripsText()
    {
        var text = "Once upon a time, there was a little girl named Lily.";
        var ids = M.Tokenizer.Encode(text);
        Assert.Equal(text, M.Tokenizer.Decode(ids).TrimStart());
        Assert.Equal(1, M.Tokenizer.Bos);
        Assert.Contains(2, M.Tokenizer.EndTokens);
        Assert.Equal(1, M.Tokenizer.Encode(text, addBos: true)[0]);
    }

    internal static void AssertClose(float[] expected, float[] actual, float tol)
    {
        Assert.Equal(expected.Length, actual.Length);
        float worst = 0;
        for (int i = 0; i < expected.Length; i++) worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]));
        Assert.True(worst <= tol, $"max abs difference {worst} > {tol}");
    }
}
