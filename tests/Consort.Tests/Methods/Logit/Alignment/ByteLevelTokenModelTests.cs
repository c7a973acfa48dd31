using Consort.LlamaCpp;
using Consort.Methods.Logit;
using Consort.Methods.Logit.Alignment;
using Consort.Testing;
using Xunit;

namespace Consort.Tests.Methods.Logit.Alignment;

/// <summary>Real models with room for the byte-level beam (2 x beam sequences per byte-level sequence; a fork needs as many again).</summary>
public sealed class CrossTokenizerFixture : IDisposable
{
    public CrossTokenizerFixture()
    {
        Stories = LlamaModelFactory.LoadTokenModel(new LlamaModelOptions { Path = TestPaths.Stories260K, Name = "stories260k", MaxSequences = 20, ContextSize = 512 });
        Tiny = LlamaModelFactory.LoadTokenModel(new LlamaModelOptions { Path = TestPaths.TinyStories656K, Name = "tinystories656k", MaxSequences = 20, ContextSize = 512 });
        Zoo = LlamaModelFactory.LoadTokenModel(new LlamaModelOptions { Path = Consort.Training.Zoo.ResolveModel("zoo:base"), Name = "zoo-base", MaxSequences = 10 });
    }

    public LlamaTokenModel Stories { get; }
    public LlamaTokenModel Tiny { get; }
    public LlamaTokenModel Zoo { get; }

    public void Dispose()
    {
        Stories.Dispose(); Tiny.Dispose(); Zoo.Dispose();
    }
}

public sealed class ByteLevelTokenModelTests(CrossTokenizerFixture fx, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<CrossTokenizerFixture>
{
    // Held-out TinyStories-style text written for these tests (ASCII only: TinyStories-656K has no byte fallback).
    private const string Text = "Once upon a time, there was a little boy named Tim. Tim had a red kite. He liked to fly his kite in the park "
        + "with his dad. One day, the wind was very strong. The kite went up into the sky. Tim laughed and ran after it.";

    private static double BitsPerByte(float[] logProbs, int bytes) => -logProbs.Sum() / Math.Log(2) / bytes;

    [Fact]
    public async Task A_byte_tokenizer_has_one_tokenization_so_byte_level_scores_equal_token_scores()
    {
        // The zoo's tokenizer maps each byte to one token: marginalizing over tokenizations must change nothing.
        var bl = new ByteLevelTokenModel(fx.Zoo);
        var ids = fx.Zoo.Tokenizer.Encode("Q: Where does Bexor live? A: Tulmar", addBos: true);
        var reference = await fx.Zoo.ScoreAsync(ids[..1], ids[1..]);
        var bytes = ByteVocabulary.Instance.Encode("Q: Where does Bexor live? A: Tulmar");
        var mine = await bl.ScoreAsync([ByteVocabulary.BosId], bytes);
        Assert.Equal(reference.Length, mine.Length);
        // Equal up to llama.cpp's numerics (a batched prompt vs one token at a time).
        for (int i = 0; i < mine.Length; i++)
            Assert.True(Math.Abs(reference[i] - mine[i]) <= 1e-3 + 1e-3 * Math.Abs(reference[i]), $"byte {i}: token-level {reference[i]}, byte-level {mine[i]}");
    }

    [Fact]
    public async Task Every_byte_distribution_sums_to_one_and_the_marginal_is_at_least_the_canonical_path()
    {
        var bl = new ByteLevelTokenModel(fx.Stories);
        using var seq = await bl.StartAsync(ByteVocabulary.Instance.Encode("Once upon a time,", addBos: true));
        foreach (var b in ByteVocabulary.Instance.Encode(" there was a girl"))
        {
            var p = seq.Next.Logits!.Sum(l => Math.Exp(l));
            Assert.Equal(1.0, p, 4);
            Assert.True(float.IsNegativeInfinity(seq.Next.Logits![ByteVocabulary.BosId]));
            await seq.AppendAsync([b]);
        }
        int n = System.Text.Encoding.UTF8.GetByteCount(Text);
        var ids = fx.Stories.Tokenizer.Encode(Text, addBos: true);
        double canonical = BitsPerByte(await fx.Stories.ScoreAsync(ids[..1], ids[1..]), n);
        double marginal = BitsPerByte(await bl.ScoreAsync([ByteVocabulary.BosId], ByteVocabulary.Instance.Encode(Text)), n);
        output.WriteLine($"stories260k: canonical {canonical:F4} bits/byte, byte-level {marginal:F4}");
        // The byte-level model sums the canonical path and others; pruning may lose a little of the canonical path's mass.
        Assert.True(marginal <= canonical + 0.01, $"byte-level {marginal} vs canonical {canonical}");
        Assert.True(marginal > canonical - 0.2, $"byte-level {marginal} is implausibly far below canonical {canonical}");
    }

    [Fact]
    public async Task Cross_tokenizer_fusion_has_lower_bits_per_byte_than_the_worse_model()
    {
        var a = new ByteLevelTokenModel(fx.Stories);
        var b = new ByteLevelTokenModel(fx.Tiny);
        using var fused = new FusedTokenModel("fused", [a, b], [0.5, 0.5], FusionCombine.Prob);
        var bytes = ByteVocabulary.Instance.Encode(Text);
        int n = bytes.Length;
        double ba = BitsPerByte(await a.ScoreAsync([ByteVocabulary.BosId], bytes), n);
        double bb = BitsPerByte(await b.ScoreAsync([ByteVocabulary.BosId], bytes), n);
        double bf = BitsPerByte(await fused.ScoreAsync([ByteVocabulary.BosId], bytes), n);
        output.WriteLine($"bits/byte: stories260k {ba:F4}, tinystories-656k {bb:F4}, fusion {bf:F4}");
        Assert.True(bf < Math.Max(ba, bb), $"fusion {bf} not below the worse model ({Math.Max(ba, bb)})");
        // A mixture's loss is at most the weighted mean of the members' (concavity of log), measured byte by byte.
        Assert.True(bf <= (ba + bb) / 2 + 1e-6);
    }

    [Fact]
    public async Task Greedy_decoding_through_the_fusion_writes_text_and_the_prompt_may_end_inside_a_token()
    {
        var a = new ByteLevelTokenModel(fx.Stories);
        var b = new ByteLevelTokenModel(fx.Tiny);
        using var fused = new FusedTokenModel("fused", [a, b], [0.5, 0.5], FusionCombine.Prob);
        // "upon a tim" is one token of TinyStories-656K: the prompt ends inside it and the next byte must still be likely.
        using var seq = await fused.StartAsync(ByteVocabulary.Instance.Encode("Once upon a tim", addBos: true));
        Assert.Equal((int)'e', seq.Next.ArgMax());
        var outBytes = new List<int>();
        for (int i = 0; i < 40; i++)
        {
            int t = seq.Next.ArgMax();
            if (t == ByteVocabulary.EndId) break;
            outBytes.Add(t);
            await seq.AppendAsync([t]);
        }
        var text = ByteVocabulary.Instance.Decode(outBytes);
        output.WriteLine("fused greedy: " + text);
        Assert.StartsWith("e", text);
        Assert.Contains(" ", text);
        Assert.True(text.All(c => c < 128), text);
    }

    [Fact]
    public async Task A_byte_no_token_starts_with_is_a_clear_error()
    {
        var b = new ByteLevelTokenModel(fx.Tiny);
        var e1 = await Assert.ThrowsAsync<ConsortException>(async () => await b.StartAsync(ByteVocabulary.Instance.Encode("Caf\u00e9", addBos: true)));
        Assert.Contains("TinyStories656K".ToLowerInvariant(), e1.Message.ToLowerInvariant());
        Assert.Contains("0xC3", e1.Message);
        using var seq = await b.StartAsync(ByteVocabulary.Instance.Encode("Once", addBos: true));
        var e2 = await Assert.ThrowsAsync<ConsortException>(async () => await seq.AppendAsync([0xC3]));
        Assert.Contains("0xC3", e2.Message);
    }

    [Fact]
    public async Task Fork_and_rewind_give_the_same_distributions_as_a_fresh_start()
    {
        // The Q8_0 model's logits move more with the cache slot than the F32 model's (measured: 3e-3 on one byte's
        // probability, where the F32 model stays under 2e-3), and the beam's merges carry such noise forward.
        await ForkAndRewind(fx.Stories, 2e-3);
        await ForkAndRewind(fx.Tiny, 6e-3);
    }

    private static async Task ForkAndRewind(ITokenModel model, double tolerance)
    {
        var bl = new ByteLevelTokenModel(model);
        var prompt = ByteVocabulary.Instance.Encode("Once upon a time, there", addBos: true);
        using var seq = await bl.StartAsync(prompt);
        using var fork = await seq.ForkAsync();
        await seq.AppendAsync(ByteVocabulary.Instance.Encode(" was a dog"));
        await fork.AppendAsync(ByteVocabulary.Instance.Encode(" was a dog"));
        // Probabilities, not logs: different cache slots change llama.cpp's numerics a little, which moves far-tail bytes.
        void Same(TokenDistribution x, TokenDistribution y)
        {
            for (int v = 0; v < ByteVocabulary.Size; v++) Assert.True(Math.Abs(Math.Exp(x.Logits![v]) - Math.Exp(y.Logits![v])) < tolerance, $"{model.Descriptor.Name} byte {v}: {Math.Exp(x.Logits![v])} vs {Math.Exp(y.Logits![v])}");
            Assert.Equal(x.ArgMax(), y.ArgMax());
        }
        Same(seq.Next, fork.Next);
        await seq.RewindAsync(prompt.Length);
        using var fresh = await bl.StartAsync(prompt);
        Same(fresh.Next, seq.Next);
    }

    [Fact]
    public void A_top_k_member_is_refused_up_front()
    {
        using var topk = new TopKOnly();
        var e = Assert.Throws<ConfigException>(() => new ByteLevelTokenModel(topk));
        Assert.Contains("full next-token distribution", e.Message);
    }

    /// <summary>A model that says it gives only top-k logprobs (nothing else is used before the refusal).</summary>
    private sealed class TopKOnly : ITokenModel
    {
        public ModelDescriptor Descriptor { get; } = new() { Name = "remote", Access = ModelAccess.Text | ModelAccess.TopKLogprobs, TopK = 5 };
        public ITokenizer Tokenizer => ByteVocabulary.Instance;
        public DistributionKind DistributionKind => DistributionKind.TopKLogprobs;
        public UsageMeter Usage { get; } = new();
        public ValueTask<ITokenSequence> StartAsync(IReadOnlyList<int> prompt, CancellationToken cancellationToken = default) => throw new NotSupportedException();
        public ValueTask StepAsync(IReadOnlyList<(ITokenSequence Sequence, int Token)> steps, CancellationToken cancellationToken = default) => throw new NotSupportedException();
        public ValueTask<float[]> ScoreAsync(IReadOnlyList<int> prompt, IReadOnlyList<int> continuation, CancellationToken cancellationToken = default) => throw new NotSupportedException();
        public void Dispose() { }
    }
}
