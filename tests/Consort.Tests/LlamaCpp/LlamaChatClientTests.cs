using Consort.Decoding;
using Consort.LlamaCpp;
using Microsoft.Extensions.AI;
using Xunit;

namespace Consort.Tests.LlamaCpp;

public sealed class LlamaChatClientTests(LlamaFixture fx) : IClassFixture<LlamaFixture>
{
    private static readonly ChatMessage[] OnceUponATime = [new(ChatRole.User, "Once upon a time")];

    [Fact]
    public async Task Greedy_Stories260k_ContinuesTheKnownStory()
    {
        var r = await fx.Stories.Chat.GetResponseAsync(OnceUponATime, new ChatOptions { MaxOutputTokens = 40 });
        // README of shared/models: ", there was a little girl named Lily. She loved to play outside in the park."
        Assert.StartsWith(", there was a little girl named Lily. She loved to play outside in the park.", r.Text);
        Assert.Equal(ChatFinishReason.Length, r.FinishReason);
        Assert.Equal(40, r.Usage!.OutputTokenCount);
        Assert.Equal(fx.Stories.Tokens!.Tokenizer.Encode("Once upon a time", addBos: true).Length, r.Usage.InputTokenCount);
        var lps = r.GetTokenLogprobs();
        Assert.NotNull(lps);
        Assert.Equal(40, lps!.Length);
        Assert.All(lps, lp => Assert.InRange(lp, -20f, 0f));

        var x = await fx.Xs.Chat.GetResponseAsync(OnceUponATime, new ChatOptions { MaxOutputTokens = 24 });
        Assert.StartsWith(", there was a little girl named Lily. She loved to play outside", x.Text);
    }

    [Fact]
    public async Task Logprobs_MatchGreedyDecodingByHand()
    {
        var r = await fx.Stories.Chat.GetResponseAsync(OnceUponATime, new ChatOptions { MaxOutputTokens = 12 });
        var tok = fx.Stories.Tokens!;
        using var seq = await tok.StartAsync(tok.Tokenizer.Encode("Once upon a time", addBos: true));
        var expected = new List<float>();
        var ids = new List<int>();
        for (int i = 0; i < 12; i++)
        {
            int t = seq.Next.ArgMax();
            expected.Add(seq.Next.LogProbabilities()[t]);
            ids.Add(t);
            await seq.AppendAsync([t]);
        }
        var lps = r.GetTokenLogprobs()!;
        Assert.Equal(tok.Tokenizer.Decode(ids), r.Text);
        Assert.Equal(12, lps.Length);
        for (int i = 0; i < 12; i++) Assert.InRange(Math.Abs(lps[i] - expected[i]), 0, 1e-4);
    }

    [Fact]
    public async Task SameSeed_SameText_DifferentSeeds_Differ()
    {
        ChatOptions O(long seed) => new() { MaxOutputTokens = 30, Temperature = 0.8f, Seed = seed };
        var a = await fx.Stories.Chat.GetResponseAsync(OnceUponATime, O(7));
        var b = await fx.Stories.Chat.GetResponseAsync(OnceUponATime, O(7));
        Assert.Equal(a.Text, b.Text);
        var texts = new HashSet<string>();
        for (int s = 1; s <= 4; s++) texts.Add((await fx.Stories.Chat.GetResponseAsync(OnceUponATime, O(s))).Text);
        Assert.True(texts.Count >= 2, "four seeds at T=0.8 all gave the same 30-token text");
    }

    [Fact]
    public async Task Streaming_ConcatenationEqualsNonStreamingText()
    {
        var options = new ChatOptions { MaxOutputTokens = 50 };
        var full = await fx.Stories.Chat.GetResponseAsync(OnceUponATime, options);
        var pieces = new List<string>();
        ChatFinishReason? finish = null;
        await foreach (var u in fx.Stories.Chat.GetStreamingResponseAsync(OnceUponATime, options))
        {
            if (!string.IsNullOrEmpty(u.Text)) pieces.Add(u.Text);
            finish ??= u.FinishReason;
        }
        Assert.True(pieces.Count > 10);
        Assert.Equal(full.Text, string.Concat(pieces));
        Assert.Equal(full.FinishReason, finish);
    }

    [Fact]
    public async Task StopSequences_CutTheTextAndStop()
    {
        var r = await fx.Stories.Chat.GetResponseAsync(OnceUponATime, new ChatOptions { MaxOutputTokens = 60, StopSequences = ["Lily"] });
        Assert.Equal(", there was a little girl named ", r.Text);
        Assert.Equal(ChatFinishReason.Stop, r.FinishReason);
        var pieces = new List<string>();
        await foreach (var u in fx.Stories.Chat.GetStreamingResponseAsync(OnceUponATime, new ChatOptions { MaxOutputTokens = 60, StopSequences = ["Lily"] }))
            pieces.Add(u.Text);
        Assert.Equal(r.Text, string.Concat(pieces));
    }

    [Fact]
    public async Task EndToken_FinishesWithStop()
    {
        // A story ends with EOS within a few hundred tokens; the context (512) bounds it either way.
        var r = await fx.Stories.Chat.GetResponseAsync(OnceUponATime, new ChatOptions { MaxOutputTokens = 480 });
        Assert.True(r.FinishReason == ChatFinishReason.Stop || r.Usage!.OutputTokenCount >= 480 - 10,
            $"finish {r.FinishReason} after {r.Usage!.OutputTokenCount} tokens");
        Assert.DoesNotContain("</s>", r.Text);
    }

    [Fact]
    public async Task SystemAndUserMessages_AreConcatenatedForBaseModels()
    {
        ChatMessage[] msgs = [new(ChatRole.System, "Once upon a time,"), new(ChatRole.User, "there was a")];
        var enc = (IChatPromptEncoder)fx.Stories.Chat.GetService(typeof(IChatPromptEncoder))!;
        var expected = fx.Stories.Tokens!.Tokenizer.Encode("Once upon a time,\nthere was a", addBos: true);
        Assert.Equal(expected, enc.EncodePrompt(msgs));
        var r = await fx.Stories.Chat.GetResponseAsync(msgs, new ChatOptions { MaxOutputTokens = 8 });
        Assert.False(string.IsNullOrWhiteSpace(r.Text));
    }

    [Fact]
    public async Task Cancellation_StopsGeneration_AndFreesTheSequence()
    {
        using var cts = new CancellationTokenSource();
        int pieces = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var u in fx.Stories.Chat.GetStreamingResponseAsync(OnceUponATime, new ChatOptions { MaxOutputTokens = 400 }, cts.Token))
                if (++pieces == 3) cts.Cancel();
        });
        Assert.Equal(3, pieces);
        // All four slots are free again: four sequences can be held at once.
        var tok = fx.Stories.Tokens!;
        var held = new List<ITokenSequence>();
        for (int i = 0; i < 4; i++) held.Add(await tok.StartAsync([1]).AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
        foreach (var s in held) s.Dispose();
    }

    [Fact]
    public async Task StreamingConsumerThatStopsEarly_FreesTheSequence()
    {
        using var m = LlamaModelFactory.Load(new LlamaModelOptions { Path = Consort.Testing.TestPaths.Stories260K, ContextSize = 64, MaxSequences = 1 });
        for (int i = 0; i < 3; i++)
        {
            await foreach (var u in m.Chat.GetStreamingResponseAsync(OnceUponATime, new ChatOptions { MaxOutputTokens = 30 }))
                break; // abandons the stream after the first piece
        }
        // With one slot, a leaked sequence would make this wait forever.
        var r = await m.Chat.GetResponseAsync(OnceUponATime, new ChatOptions { MaxOutputTokens = 3 }).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(3, r.Usage!.OutputTokenCount);
    }

    [Fact]
    public async Task ConcurrentChats_OnOneModel_AllComplete()
    {
        var tasks = Enumerable.Range(0, 6).Select(i => fx.Stories.Chat.GetResponseAsync(OnceUponATime,
            new ChatOptions { MaxOutputTokens = 20, Temperature = 0.7f, Seed = i })).ToArray();
        var results = await Task.WhenAll(tasks);
        Assert.All(results, r => Assert.Equal(20, r.Usage!.OutputTokenCount));
        // Sequential rerun of seed 0 gives the same text: concurrency does not leak between sequences.
        var again = await fx.Stories.Chat.GetResponseAsync(OnceUponATime, new ChatOptions { MaxOutputTokens = 20, Temperature = 0.7f, Seed = 0 });
        Assert.Equal(results[0].Text, again.Text);
    }
}
