using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;

namespace Consort.Server.Tests;

/// <summary>The server over a real llama.cpp model (stories260K.gguf).</summary>
public sealed class RealModelServerTests(StoriesFixture fx) : IClassFixture<StoriesFixture>
{
    [Fact]
    public async Task Chat_stream_equals_non_stream_at_temperature_zero()
    {
        await using var s = await RunningServer.StartAsync([fx.Model]);
        var body = new JsonObject
        {
            ["model"] = "stories260k", ["temperature"] = 0, ["max_tokens"] = 24,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Once upon a time" }),
        };
        var (status, json) = await s.PostAsync("/v1/chat/completions", body);
        Assert.Equal(200, status);
        string text = json!["choices"]![0]!["message"]!["content"]!.GetValue<string>();
        Assert.False(string.IsNullOrWhiteSpace(text));
        Assert.True(json["usage"]!["completion_tokens"]!.GetValue<long>() > 0);
        var streamBody = body.DeepClone().AsObject();
        streamBody["stream"] = true;
        var events = await s.PostStreamAsync("/v1/chat/completions", streamBody);
        Assert.Equal("[DONE]", events[^1]);
        string streamed = string.Concat(events[..^1].Select(e => JsonNode.Parse(e)!["choices"]![0]!["delta"]!["content"]?.GetValue<string>() ?? ""));
        Assert.Equal(text, streamed);
    }

    [Fact]
    public async Task Completions_with_logprobs_are_greedy_consistent_and_match_direct_decoding()
    {
        await using var s = await RunningServer.StartAsync([fx.Model]);
        var (status, json) = await s.PostAsync("/v1/completions", new JsonObject
        {
            ["model"] = "stories260k", ["prompt"] = "Once upon a time", ["max_tokens"] = 8, ["temperature"] = 0, ["logprobs"] = 3,
        });
        Assert.Equal(200, status);
        var choice = json!["choices"]![0]!;
        string text = choice["text"]!.GetValue<string>();
        Assert.StartsWith(", there was", text);
        var lp = choice["logprobs"]!;
        var tokens = lp["tokens"]!.AsArray().Select(t => t!.GetValue<string>()).ToList();
        Assert.Equal(8, tokens.Count);
        Assert.Equal(text, string.Concat(tokens));
        var tlps = lp["token_logprobs"]!.AsArray().Select(t => t!.GetValue<float>()).ToList();
        var tops = lp["top_logprobs"]!.AsArray();
        for (int i = 0; i < tokens.Count; i++)
        {
            Assert.True(tlps[i] <= 0);
            var top = tops[i]!.AsObject();
            Assert.InRange(top.Count, 1, 3);
            // Greedy: the chosen token is the best alternative.
            Assert.Equal(top.Max(p => p.Value!.GetValue<float>()), tlps[i], 4);
            Assert.Equal(tlps[i], top[tokens[i]]!.GetValue<float>(), 4);
        }
        Assert.Equal("length", choice["finish_reason"]!.GetValue<string>());
        Assert.Equal(8, json["usage"]!["completion_tokens"]!.GetValue<long>());

        // Same first token logprob as scoring the text directly on the model.
        var tok = fx.Model.Tokens!.Tokenizer;
        int[] prompt = tok.Encode("Once upon a time", addBos: true);
        int[] full = tok.Encode("Once upon a time" + text, addBos: true);
        var direct = await fx.Model.Tokens.ScoreAsync(prompt, full[prompt.Length..]);
        Assert.Equal(direct.Sum(), tlps.Sum(), 2);
    }

    [Fact]
    public async Task Completions_echo_scores_the_prompt_and_stop_sequences_cut()
    {
        await using var s = await RunningServer.StartAsync([fx.Model]);
        var (_, json) = await s.PostAsync("/v1/completions", new JsonObject
        {
            ["model"] = "stories260k", ["prompt"] = "Once upon a time", ["max_tokens"] = 0, ["echo"] = true, ["logprobs"] = 1,
        });
        var lp = json!["choices"]![0]!["logprobs"]!;
        Assert.Equal("Once upon a time", json["choices"]![0]!["text"]!.GetValue<string>());
        var tokens = lp["tokens"]!.AsArray().Select(t => t!.GetValue<string>()).ToList();
        Assert.Equal("Once upon a time", string.Concat(tokens));
        var tok = fx.Model.Tokens!.Tokenizer;
        int[] ids = tok.Encode("Once upon a time", addBos: true);
        var direct = await fx.Model.Tokens.ScoreAsync(ids[..1], ids[1..]);
        Assert.Equal(direct, lp["token_logprobs"]!.AsArray().Select(t => t!.GetValue<float>()));

        var (_, stopped) = await s.PostAsync("/v1/completions", new JsonObject
        {
            ["model"] = "stories260k", ["prompt"] = "Once upon a time", ["max_tokens"] = 30, ["temperature"] = 0, ["stop"] = "girl",
        });
        Assert.Equal(", there was a little ", stopped!["choices"]![0]!["text"]!.GetValue<string>());
        Assert.Equal("stop", stopped["choices"]![0]!["finish_reason"]!.GetValue<string>());
    }

    [Fact]
    public async Task Completions_stream_matches_non_stream()
    {
        await using var s = await RunningServer.StartAsync([fx.Model]);
        var body = new JsonObject { ["model"] = "stories260k", ["prompt"] = "Once upon a time", ["max_tokens"] = 10, ["temperature"] = 0 };
        var (_, json) = await s.PostAsync("/v1/completions", body);
        var sb = body.DeepClone().AsObject();
        sb["stream"] = true;
        var events = await s.PostStreamAsync("/v1/completions", sb);
        Assert.Equal("[DONE]", events[^1]);
        Assert.Equal(json!["choices"]![0]!["text"]!.GetValue<string>(),
            string.Concat(events[..^1].Select(e => JsonNode.Parse(e)!["choices"]![0]!["text"]!.GetValue<string>())));
    }
}
