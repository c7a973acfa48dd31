using System.Text.Json.Nodes;
using Consort.LlamaCpp;
using Consort.Testing;

namespace Consort.Server.Tests;

/// <summary>
/// Concurrent server requests to one local model share llama_decode calls (the model's batching engine), and each
/// answer is exactly what the request gets alone: greedy and seeded sampling, chat and completions.
/// </summary>
public sealed class BatchedServingTests
{
    [Fact]
    public async Task Concurrent_requests_share_decode_calls_and_answer_as_alone()
    {
        using var model = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, Name = "stories260k", ContextSize = 256, MaxSequences = 8, Seed = 1 });
        var tokens = (LlamaTokenModel)model.Tokens!;
        await using var s = await RunningServer.StartAsync([model], new ServerOptions { MaxConcurrentRequests = 16 });
        string[] prompts = ["Once upon a time", "The little dog", "Lily saw a bird", "Tom and Sam", "One day, a girl", "The sun was", "A big cat", "Mom said"];
        JsonObject Body(int i) => i % 2 == 0
            ? new JsonObject { ["model"] = "stories260k", ["prompt"] = prompts[i], ["max_tokens"] = 24, ["temperature"] = 0 }
            : new JsonObject
            {
                ["model"] = "stories260k", ["max_tokens"] = 24, ["temperature"] = 0.8, ["seed"] = 100 + i,
                ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = prompts[i] }),
            };
        async Task<string> Ask(int i)
        {
            bool chat = i % 2 == 1;
            var (status, json) = await s.PostAsync(chat ? "/v1/chat/completions" : "/v1/completions", Body(i));
            Assert.Equal(200, status);
            var choice = json!["choices"]![0]!;
            return (chat ? choice["message"]!["content"] : choice["text"])!.GetValue<string>();
        }

        var alone = new List<string>();
        for (int i = 0; i < prompts.Length; i++) alone.Add(await Ask(i));
        var before = tokens.Statistics;
        var together = await Task.WhenAll(Enumerable.Range(0, prompts.Length).Select(i => Task.Run(() => Ask(i))));
        var after = tokens.Statistics;

        for (int i = 0; i < prompts.Length; i++) Assert.Equal(alone[i], together[i]);
        Assert.True(alone.Distinct().Count() > 1, "every prompt gave the same text: the comparison would show nothing");
        long shared = after.SharedSequenceSteps - before.SharedSequenceSteps, steps = after.SequenceSteps - before.SequenceSteps;
        // How many steps share a call depends on when the requests arrive; on a busy machine some run alone.
        Assert.True(after.GroupCalls > before.GroupCalls, "no llama_decode call stepped two requests at once");
        Assert.True(shared >= steps / 4, $"only {shared} of {steps} sequence steps ran in shared calls");
    }
}
