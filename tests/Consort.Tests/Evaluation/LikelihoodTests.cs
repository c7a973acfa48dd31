using System.Text.Json.Nodes;
using Consort.Evaluation;
using Consort.LlamaCpp;
using Consort.Testing;
using Microsoft.Extensions.AI;
using Xunit;

namespace Consort.Tests.Evaluation;

public sealed class LikelihoodTests
{
    private static string McFile(TempDir tmp, string json)
    {
        File.WriteAllText(tmp.File("mc.json"), json);
        return tmp.File("mc.json");
    }

    [Fact]
    public async Task PicksHighestSumAndHighestPerByteWithFakeTokenModel()
    {
        using var tmp = new TempDir();
        // Gold B is long; per token it is likelier (-0.5) than A (-2), but A's sum is higher because it is short.
        var path = McFile(tmp, """
            {"name": "toy", "task_type": "multiple_choice", "test": [
              {"id": 1, "question": "Pick", "choices": {"A": "cat", "B": "a much longer answer"}, "answer": "B"},
              {"id": 2, "question": "Pick", "choices": {"A": "cat", "B": "dog"}, "answer": "B"}
            ]}
            """);
        var tokens = new FakeTokenModel(text => text.Contains("cat") ? -2f : -0.5f);
        var task = EvalTask.Create(JsonNode.Parse($$"""{"dataset": {{JsonValue.Create(path).ToJsonString()}}, "scoring": "likelihood"}"""), []);
        var item = task.GetItems()[0];
        var lr = await LikelihoodScorer.ScoreAsync(tokens, task.LikelihoodPrompt(item), item, letterForm: false);
        Assert.Equal(2, lr.Choices.Count);
        Assert.Equal(-2 * " cat".Length, lr.Choices[0].LogLikelihood, 4);
        Assert.Equal(-0.5 * " a much longer answer".Length, lr.Choices[1].LogLikelihood, 4);
        Assert.Equal("A", lr.Score.Extracted);            // acc: highest sum
        Assert.Equal(0, lr.Score.Metrics!["acc"]);
        Assert.Equal(1, lr.Score.Metrics!["acc_norm"]);   // acc_norm: highest per byte

        // Through the runner: the model's chat client is never used.
        using var model = ScriptedChatClient.Model("fake", (p, n, ct) => throw new InvalidOperationException("chat must not be called"), tokens);
        var summary = await EvalRunner.RunAsync(model, task, new EvalRunOptions { OutputDirectory = tmp.File("out") });
        Assert.Equal(2, summary.N);
        Assert.Equal(0, summary.Errors);
        Assert.Equal(0.5, summary.Score, 9);              // item 1 wrong by acc, item 2 right
        Assert.Equal(1.0, summary.Metrics["acc_norm"], 9); // both right per byte
        var lines = File.ReadAllLines(Path.Combine(tmp.File("out"), EvalRunner.ResultsFileName));
        Assert.All(lines, l => Assert.NotNull(JsonNode.Parse(l)!["likelihoods"]));

        // Letter form scores " A" and " B".
        var letterTask = EvalTask.Create(JsonNode.Parse($$"""{"dataset": {{JsonValue.Create(path).ToJsonString()}}, "scoring": "likelihood_letter"}"""), []);
        var lt = await LikelihoodScorer.ScoreAsync(tokens, letterTask.LikelihoodPrompt(item), item, letterForm: true);
        Assert.Equal([" A", " B"], lt.Choices.Select(c => c.Continuation));
        Assert.Contains("A. cat", letterTask.LikelihoodPrompt(item));
    }

    [Fact]
    public async Task LikelihoodNeedsTokenAccess()
    {
        using var tmp = new TempDir();
        var path = McFile(tmp, """{"name": "toy", "task_type": "multiple_choice", "test": [{"id": 1, "question": "Pick", "choices": {"A": "x", "B": "y"}, "answer": "B"}]}""");
        var task = EvalTask.Create(JsonNode.Parse($$"""{"dataset": {{JsonValue.Create(path).ToJsonString()}}, "scoring": "likelihood"}"""), []);
        using var textOnly = ScriptedChatClient.Model("api-model", (p, n, ct) => Task.FromResult("B"));
        var e = await Assert.ThrowsAsync<ConfigException>(() => EvalRunner.RunAsync(textOnly, task, new EvalRunOptions { OutputDirectory = tmp.File("out") }));
        Assert.Contains("api-model", e.Message);
        Assert.Contains("token access", e.Message);
    }

    [Fact]
    public async Task RealStoriesModelThroughLikelihoodAndGeneration()
    {
        using var tmp = new TempDir();
        using var model = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, Name = "stories260k", ContextSize = 256, MaxSequences = 2 });

        // Likelihood: a TinyStories-like ending against scrambled letters.
        var path = McFile(tmp, """
            {"name": "stories_mc", "task_type": "multiple_choice", "test": [
              {"id": "s1", "question": "Once upon a time, there was a little girl named Lily. She liked to", "choices": {"A": "xq zvk pwq jjr.", "B": "play with her toys."}, "answer": "B"},
              {"id": "s2", "question": "One day, Tom went to the park with his", "choices": {"A": "mom.", "B": "qzx vvk."}, "answer": "A"},
              {"id": "s3", "question": "The sun was shining and the birds were", "choices": {"A": "zzq kkv.", "B": "xxj pqz.", "C": "singing."}, "answer": "C"}
            ]}
            """);
        var task = EvalTask.Create(JsonNode.Parse($$"""{"dataset": {{JsonValue.Create(path).ToJsonString()}}, "scoring": "likelihood", "prompt": "{question}"}"""), []);
        var summary = await EvalRunner.RunAsync(model, task, new EvalRunOptions { OutputDirectory = tmp.File("ll"), Concurrency = 2 });
        Assert.Equal(3, summary.N);
        Assert.Equal(0, summary.Errors);
        Assert.Equal(1.0, summary.Score);
        Assert.True(summary.InputTokens > 0);

        // The summed log-likelihood equals ScoreAsync on the same tokens.
        var item = task.GetItems()[0];
        var lr = await LikelihoodScorer.ScoreAsync(model.Tokens!, task.LikelihoodPrompt(item), item, letterForm: false);
        var tok = model.Tokens!.Tokenizer;
        var prompt = tok.Encode(item.Question!, addBos: tok.Bos is not null);
        var whole = tok.Encode(item.Question + " play with her toys.", addBos: tok.Bos is not null);
        var direct = (await model.Tokens.ScoreAsync(prompt, whole[prompt.Length..])).Sum(x => (double)x);
        Assert.Equal(direct, lr.Choices.Single(c => c.Letter == "B").LogLikelihood, 3);
        Assert.True(lr.Choices.All(c => c.LogLikelihood < 0 && double.IsFinite(c.LogLikelihood)));

        // Generation through the chat path: gold = the model's own greedy reply scores 1, a wrong gold scores 0.
        var storyPrompt = "Once upon a time, there was a little dog named";
        var greedy = await model.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, storyPrompt)], new ChatOptions { MaxOutputTokens = 6, Temperature = 0, StopSequences = ["\n"] });
        Assert.False(string.IsNullOrWhiteSpace(greedy.Text));
        var gen = tmp.File("gen.json");
        File.WriteAllText(gen, new JsonObject
        {
            ["dataset"] = "stories_gen",
            ["task_type"] = "exact_match",
            ["test"] = new JsonArray(
                new JsonObject { ["id"] = 1, ["input"] = storyPrompt, ["output"] = greedy.Text.Trim() },
                new JsonObject { ["id"] = 2, ["input"] = storyPrompt, ["output"] = "Zanzibar-9000" }),
        }.ToJsonString());
        var genTask = EvalTask.Create(JsonNode.Parse($$"""{"dataset": {{JsonValue.Create(gen).ToJsonString()}}, "prompt": "{input}", "max_tokens": 6, "stop": ["\n"]}"""), []);
        var gs = await EvalRunner.RunAsync(model, genTask, new EvalRunOptions { OutputDirectory = tmp.File("gen"), Concurrency = 2 });
        Assert.Equal(2, gs.N);
        Assert.Equal(0.5, gs.Score);
        Assert.True(gs.OutputTokens > 0);
        var lines = File.ReadAllLines(Path.Combine(tmp.File("gen"), EvalRunner.ResultsFileName)).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.All(lines, l => Assert.Equal(greedy.Text, (string)l["output"]!));
    }
}
