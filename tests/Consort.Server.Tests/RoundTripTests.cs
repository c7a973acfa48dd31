using Consort.OpenAI;
using Microsoft.Extensions.AI;

namespace Consort.Server.Tests;

/// <summary>Consort's OpenAI backend talking to Consort's server (both in-process, loopback), over stories260K.gguf.</summary>
public sealed class RoundTripTests(StoriesFixture fx) : IClassFixture<StoriesFixture>
{
    private static ConsortModel Remote(RunningServer s, string vocabulary, string keyEnv) => OpenAIModelFactory.Create(new OpenAIModelOptions
    {
        Name = "remote-stories", BaseUrl = s.Url + "/v1", Model = "stories260k", ApiKeyEnv = keyEnv, TopLogprobs = 5,
        Timeout = TimeSpan.FromSeconds(30), MaxRetries = 1, Vocabulary = vocabulary,
    });

    private static string KeyEnv()
    {
        string env = "CONSORT_RT_KEY_" + Guid.NewGuid().ToString("N")[..8];
        Environment.SetEnvironmentVariable(env, "test-key");
        return env;
    }

    [Fact]
    public async Task Chat_through_the_server_equals_direct_chat_and_carries_logprobs()
    {
        await using var s = await RunningServer.StartAsync([fx.Model]);
        using var remote = Remote(s, "rt-chat", KeyEnv());
        List<ChatMessage> msgs = [new(ChatRole.User, "Once upon a time")];
        var options = new ChatOptions { Temperature = 0, MaxOutputTokens = 20 };
        var direct = await fx.Model.Chat.GetResponseAsync(msgs, options);
        var viaServer = await remote.Chat.GetResponseAsync(msgs, options.RequestingLogprobs());
        Assert.Equal(direct.Text, viaServer.Text);
        Assert.True(viaServer.Usage!.OutputTokenCount > 0);
        Assert.NotNull(viaServer.GetTokenLogprobs());

        var streamed = string.Concat(await remote.Chat.GetStreamingResponseAsync(msgs, options).Select(u => u.Text).ToListAsync());
        Assert.Equal(direct.Text, streamed);
    }

    [Fact]
    public async Task Token_access_through_the_server_matches_the_local_model()
    {
        await using var s = await RunningServer.StartAsync([fx.Model]);
        using var remote = Remote(s, "rt-tokens", KeyEnv());
        var rt = remote.Tokens!;
        var local = fx.Model.Tokens!;
        using var seq = await rt.StartAsync(rt.Tokenizer.Encode("Once upon a time"));
        int[] lp = local.Tokenizer.Encode("Once upon a time", addBos: true);
        using var lseq = await local.StartAsync(lp);
        string localBest = local.Tokenizer.Decode([.. lp, lseq.Next.ArgMax()])[local.Tokenizer.Decode(lp).Length..];
        Assert.Equal(localBest, rt.Tokenizer.Decode([seq.Next.ArgMax()]));
        Assert.Equal(5, seq.Next.TopIds!.Length);
        Assert.Equal(lseq.Next.LogProbabilities()[lseq.Next.ArgMax()], seq.Next.TopLogprobs![0], 3);

        // Two greedy steps through the endpoint give the local greedy text.
        await seq.AppendAsync([seq.Next.ArgMax()]);
        await seq.AppendAsync([seq.Next.ArgMax()]);
        Assert.StartsWith("Once upon a time, there", rt.Tokenizer.Decode(seq.Tokens));

        // Scoring a continuation gives the local log-likelihood (summed over the server's tokens).
        var cont = rt.Tokenizer.Encode(", there was a little girl");
        var remoteScore = await rt.ScoreAsync(rt.Tokenizer.Encode("Once upon a time"), cont);
        int[] full = local.Tokenizer.Encode("Once upon a time, there was a little girl", addBos: true);
        var localScore = await local.ScoreAsync(lp, full[lp.Length..]);
        Assert.Equal(localScore.Sum(), remoteScore.Sum(), 2);
        Assert.True(rt.Usage.Calls >= 4);
    }

    [Fact]
    public async Task Wrong_key_surfaces_as_a_clear_error()
    {
        await using var s = await RunningServer.StartAsync([fx.Model]);
        string env = "CONSORT_RT_BAD_" + Guid.NewGuid().ToString("N")[..8];
        Environment.SetEnvironmentVariable(env, "sk-very-secret-rt");
        using var remote = Remote(s, "rt-bad", env);
        var e = await Assert.ThrowsAsync<ConsortException>(() => remote.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "x")]));
        Assert.Contains("401", e.Message);
        Assert.DoesNotContain("sk-very-secret-rt", e.Message);
        var e2 = await Assert.ThrowsAsync<ConsortException>(async () => await remote.Tokens!.StartAsync(remote.Tokens.Tokenizer.Encode("x")));
        Assert.Contains("401", e2.Message);
    }
}
