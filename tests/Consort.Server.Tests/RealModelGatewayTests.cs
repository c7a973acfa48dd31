using System.Text.Json.Nodes;
using Consort.Cli.Commands;
using Consort.Testing;

namespace Consort.Server.Tests;

/// <summary>The example fusion's usage streamed and not, and /v1/embeddings from a real GGUF through llama.cpp.</summary>
public sealed class RealModelGatewayTests
{
    [Fact]
    public async Task A_fusion_reports_the_same_usage_streamed_and_not()
    {
        await using var loaded = await ServeConfig.LoadAsync(Path.Combine(TestPaths.RepoRoot, "examples", "serve.json"), "http://127.0.0.1:0", null, default);
        await using var s = await RunningServer.StartAsync(loaded.Models);
        var body = new JsonObject
        {
            ["model"] = "fusion", ["max_tokens"] = 32, ["temperature"] = 0,
            ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Once upon a time" }),
        };
        var (status, json) = await s.PostAsync("/v1/chat/completions", body);
        Assert.Equal(200, status);
        body["stream"] = true;
        var events = await s.PostStreamAsync("/v1/chat/completions", body);
        var last = JsonNode.Parse(events[^2])!;
        Assert.Equal(json!["usage"]!.ToJsonString(), last["usage"]!.ToJsonString());
        Assert.Equal(32, json["usage"]!["completion_tokens"]!.GetValue<long>()); // the answer's tokens, not the members' sum (62)
        Assert.Equal(json["choices"]![0]!["message"]!["content"]!.GetValue<string>(),
            string.Concat(events[..^1].Select(e => JsonNode.Parse(e)!["choices"]![0]!["delta"]!["content"]?.GetValue<string>() ?? "")));
    }

    [Fact]
    public async Task Embeddings_of_a_gguf_model_are_served_normalized_and_deterministic()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("serve.json"), $$"""
            {"models":[{"name":"stories","path":"{{TestPaths.Stories260K}}"}], "server":{"embedding_models":["stories"] } }
            """);
        await using var loaded = await ServeConfig.LoadAsync(dir.File("serve.json"), "http://127.0.0.1:0", null, default);
        await using var s = await RunningServer.StartAsync(loaded.Models, embedders: loaded.Embedders);
        var (status, json) = await s.PostAsync("/v1/embeddings", new JsonObject
        {
            ["model"] = "stories", ["input"] = new JsonArray("Once upon a time", "The cat sat on the mat", "Once upon a time"),
        });
        Assert.Equal(200, status);
        var data = json!["data"]!.AsArray();
        Assert.Equal(3, data.Count);
        var v = data.Select(d => d!["embedding"]!.AsArray().Select(x => x!.GetValue<float>()).ToArray()).ToList();
        Assert.Equal(v[0].Length, v[1].Length);
        Assert.True(v[0].Length >= 16);
        foreach (var x in v) Assert.Equal(1.0, Math.Sqrt(x.Sum(f => (double)f * f)), 3);
        Assert.Equal(v[0], v[2]);
        Assert.NotEqual(v[0], v[1]);
        Assert.True(json["usage"]!["prompt_tokens"]!.GetValue<long>() > 0);

        var (b64, jb) = await s.PostAsync("/v1/embeddings", new JsonObject { ["model"] = "stories", ["input"] = "Once upon a time", ["encoding_format"] = "base64" });
        Assert.Equal(200, b64);
        var bytes = Convert.FromBase64String(jb!["data"]![0]!["embedding"]!.GetValue<string>());
        Assert.Equal(v[0].Length * 4, bytes.Length);
        var (bad, je) = await s.PostAsync("/v1/embeddings", new JsonObject { ["model"] = "stories", ["input"] = new JsonArray() });
        Assert.Equal(400, bad);
        OpenAISurfaceTests.AssertOpenAIError(je, "input");
        var (nf, jn) = await s.PostAsync("/v1/embeddings", new JsonObject { ["model"] = "nope", ["input"] = "x" });
        Assert.Equal(404, nf);
        OpenAISurfaceTests.AssertOpenAIError(jn, "model");
    }
}
