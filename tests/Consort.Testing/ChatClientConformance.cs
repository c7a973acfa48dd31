using Microsoft.Extensions.AI;

namespace Consort.Testing;

/// <summary>
/// The contract every chat client Consort builds keeps (local llama.cpp, endpoints, fused models, collaborations):
/// subclass it and return the client from <see cref="CreateClient"/>; every test below runs against it.
/// </summary>
public abstract class ChatClientConformance
{
    /// <summary>A fresh client (disposed by the test).</summary>
    protected abstract IChatClient CreateClient();

    /// <summary>The prompt of the tests.</summary>
    protected virtual IList<ChatMessage> Messages => [new(ChatRole.User, "Once upon a time")];

    /// <summary>Whether output tokens are counted in the usage (false for clients that count other units).</summary>
    protected virtual bool CountsTokens => true;

    /// <summary>Whether the client honours stop sequences.</summary>
    protected virtual bool SupportsStop => true;

    private static ChatOptions Greedy(int max) => new() { Temperature = 0, MaxOutputTokens = max };

    /// <summary>A response has text, usage and a finish reason.</summary>
    [Fact]
    public async Task Response_has_text_usage_and_finish_reason()
    {
        using var c = CreateClient();
        var r = await c.GetResponseAsync(Messages, Greedy(12));
        Assert.NotNull(r.Text);
        Assert.NotNull(r.Usage);
        Assert.True(r.Usage!.OutputTokenCount is > 0, "output tokens counted");
        Assert.NotNull(r.FinishReason);
    }

    /// <summary>Streamed pieces concatenate to the non-streamed answer (greedy), and the stream reports usage.</summary>
    [Fact]
    public async Task Streaming_concatenates_to_the_response()
    {
        using var c = CreateClient();
        var whole = await c.GetResponseAsync(Messages, Greedy(16));
        var updates = new List<ChatResponseUpdate>();
        await foreach (var u in c.GetStreamingResponseAsync(Messages, Greedy(16))) updates.Add(u);
        Assert.Equal(whole.Text, string.Concat(updates.Select(u => u.Text)));
        var usage = updates.SelectMany(u => u.Contents.OfType<UsageContent>()).LastOrDefault();
        Assert.NotNull(usage);
        Assert.Equal(whole.Usage?.OutputTokenCount, usage!.Details.OutputTokenCount);
    }

    /// <summary>The output limit holds.</summary>
    [Fact]
    public async Task Max_output_tokens_is_honoured()
    {
        if (!CountsTokens) return;
        using var c = CreateClient();
        var r = await c.GetResponseAsync(Messages, Greedy(3));
        Assert.InRange(r.Usage!.OutputTokenCount ?? 0, 1, 3);
    }

    /// <summary>Text stops before a stop sequence.</summary>
    [Fact]
    public async Task Stop_sequence_ends_the_text()
    {
        if (!SupportsStop) return;
        using var c = CreateClient();
        var free = await c.GetResponseAsync(Messages, Greedy(24));
        var words = free.Text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(words.Length >= 3, $"needs a longer answer to test stops: '{free.Text}'");
        string stop = " " + words[2];
        var o = Greedy(24);
        o.StopSequences = [stop];
        var r = await c.GetResponseAsync(Messages, o);
        Assert.DoesNotContain(stop, r.Text);
        Assert.StartsWith(r.Text, free.Text);
    }

    /// <summary>A cancelled token stops a call.</summary>
    [Fact]
    public async Task Cancelled_call_throws()
    {
        using var c = CreateClient();
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => c.GetResponseAsync(Messages, Greedy(8), cts.Token));
    }

    /// <summary>Greedy answers repeat exactly.</summary>
    [Fact]
    public async Task Greedy_answers_repeat()
    {
        using var c = CreateClient();
        var a = await c.GetResponseAsync(Messages, Greedy(12));
        var b = await c.GetResponseAsync(Messages, Greedy(12));
        Assert.Equal(a.Text, b.Text);
    }
}
