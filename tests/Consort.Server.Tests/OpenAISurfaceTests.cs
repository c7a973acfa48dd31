using System.Net;
using System.Text;
using System.Text.Json.Nodes;

namespace Consort.Server.Tests;

/// <summary>The OpenAI surface beyond one plain answer: n &gt; 1, refused fields, stream_options, request ids, metrics, errors on every path.</summary>
public sealed class OpenAISurfaceTests
{
    private static JsonObject Chat(string model, string text) =>
        new() { ["model"] = model, ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = text }) };

    internal static void AssertOpenAIError(JsonNode? json, string? param = null, string? code = null) => OpenAIErrors.Assert(json, param, code);

    [Fact]
    public async Task N_choices_come_back_indexed_with_their_own_seeds_streamed_or_not()
    {
        await using var s = await RunningServer.StartAsync([Fakes.Model("alpha")]);
        var body = Chat("alpha", "hi");
        body["n"] = 3;
        body["seed"] = 10;
        var (status, json) = await s.PostAsync("/v1/chat/completions", body);
        Assert.Equal(200, status);
        var choices = json!["choices"]!.AsArray();
        Assert.Equal([0, 1, 2], choices.Select(c => c!["index"]!.GetValue<int>()));
        Assert.Equal(["alpha says: hi #10", "alpha says: hi #11", "alpha says: hi #12"], choices.Select(c => c!["message"]!["content"]!.GetValue<string>()));
        Assert.Equal(7, json["usage"]!["prompt_tokens"]!.GetValue<long>());
        Assert.Equal(12, json["usage"]!["completion_tokens"]!.GetValue<long>());

        body["stream"] = true;
        body["stream_options"] = new JsonObject { ["include_usage"] = true };
        var events = await s.PostStreamAsync("/v1/chat/completions", body);
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonNode.Parse(e)!).ToList();
        string TextOf(int i) => string.Concat(chunks.Where(c => c["choices"]!.AsArray().Count > 0 && c["choices"]![0]!["index"]!.GetValue<int>() == i)
            .Select(c => c["choices"]![0]!["delta"]!["content"]?.GetValue<string>() ?? ""));
        Assert.Equal("alpha says: hi #11", TextOf(1));
        Assert.Equal(3, chunks.Count(c => c["choices"]!.AsArray().Count > 0 && c["choices"]![0]!["finish_reason"] is not null));
        // include_usage: a last chunk with no choices and the usage (as OpenAI sends it).
        Assert.Empty(chunks[^1]["choices"]!.AsArray());
        Assert.Equal(json["usage"]!.ToJsonString(), chunks[^1]["usage"]!.ToJsonString());

        body.Remove("stream"); body.Remove("stream_options");
        body["n"] = 100;
        var (st2, j2) = await s.PostAsync("/v1/chat/completions", body);
        Assert.Equal(400, st2);
        AssertOpenAIError(j2, "n");
    }

    [Theory]
    [InlineData("""{"tools":[{"type":"function","function":{"name":"f"}}]}""", "tools", "unsupported_parameter")]
    [InlineData("""{"response_format":{"type":"json_object"}}""", "response_format", "unsupported_parameter")]
    [InlineData("""{"tool_choice":"required"}""", "tool_choice", "unsupported_parameter")]
    [InlineData("""{"logit_bias":{"50256":-100}}""", "logit_bias", "unsupported_parameter")]
    [InlineData("""{"frobnicate":1}""", "frobnicate", "unknown_parameter")]
    [InlineData("""{"stream_options":{"weird":true}}""", "stream_options", null)]
    public async Task Fields_the_server_cannot_honour_are_refused_not_ignored(string extra, string param, string? code)
    {
        await using var s = await RunningServer.StartAsync([Fakes.Model("alpha")]);
        var body = Chat("alpha", "x");
        foreach (var (k, v) in JsonNode.Parse(extra)!.AsObject()) body[k] = v?.DeepClone();
        var (status, json) = await s.PostAsync("/v1/chat/completions", body);
        Assert.Equal(400, status);
        AssertOpenAIError(json, param, code);
    }

    [Fact]
    public async Task Harmless_values_of_unsupported_fields_are_accepted()
    {
        await using var s = await RunningServer.StartAsync([Fakes.Model("alpha")]);
        var body = Chat("alpha", "x");
        body["tools"] = new JsonArray();
        body["tool_choice"] = "none";
        body["response_format"] = new JsonObject { ["type"] = "text" };
        body["user"] = "someone";
        body["store"] = false;
        Assert.Equal(200, (await s.PostAsync("/v1/chat/completions", body)).Status);
    }

    [Fact]
    public async Task Every_error_is_openai_shaped_404_and_405_included_and_ids_are_echoed()
    {
        await using var s = await RunningServer.StartAsync([Fakes.Model("alpha")]);
        using var nf = await s.Http.GetAsync("/v1/nothing-here");
        Assert.Equal(HttpStatusCode.NotFound, nf.StatusCode);
        AssertOpenAIError(JsonNode.Parse(await nf.Content.ReadAsStringAsync()), code: "not_found");
        using var root = await s.Http.GetAsync("/");
        Assert.Equal(HttpStatusCode.NotFound, root.StatusCode);
        AssertOpenAIError(JsonNode.Parse(await root.Content.ReadAsStringAsync()));
        using var wrong = await s.Http.DeleteAsync("/v1/chat/completions");
        Assert.Equal(HttpStatusCode.MethodNotAllowed, wrong.StatusCode);
        AssertOpenAIError(JsonNode.Parse(await wrong.Content.ReadAsStringAsync()), code: "method_not_allowed");
        using var model404 = await s.Http.GetAsync("/v1/models/none");
        AssertOpenAIError(JsonNode.Parse(await model404.Content.ReadAsStringAsync()), "model", "model_not_found");

        Assert.StartsWith("req-", nf.Headers.GetValues("X-Request-Id").Single());
        using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(Chat("alpha", "x").ToJsonString(), Encoding.UTF8, "application/json") };
        req.Headers.Add("X-Request-Id", "client-id-42");
        using var resp = await s.Http.SendAsync(req);
        Assert.Equal("client-id-42", resp.Headers.GetValues("X-Request-Id").Single());
    }

    [Fact]
    public async Task Metrics_are_served_in_prometheus_format_with_requests_tokens_latency_and_queue()
    {
        var logs = new CapturingLoggerProvider();
        string model = "metered-" + Guid.NewGuid().ToString("N")[..6];
        await using var s = await RunningServer.StartAsync([Fakes.Model(model)], new ServerOptions { ExtraLogger = logs });
        for (int i = 0; i < 3; i++) Assert.Equal(200, (await s.PostAsync("/v1/chat/completions", Chat(model, "a b"))).Status);
        using var plain = new HttpClient();
        string text = await plain.GetStringAsync(s.Url + "/metrics");
        Assert.Contains($"consort_server_requests_total{{otel_scope_name=\"Consort.Server\",endpoint=\"chat\",model=\"{model}\",status=\"200\"}} 3", text);
        Assert.Contains($"consort_server_tokens_total{{otel_scope_name=\"Consort.Server\",kind=\"completion\",model=\"{model}\"}} 12", text);
        Assert.Contains("consort_server_request_duration_seconds_bucket", text);
        Assert.Contains("consort_server_queue_depth", text);
        // One structured line per request, with its id, model, status and tokens.
        var line = logs.Lines.First(l => l.Contains("POST /v1/chat/completions 200") && l.Contains(model));
        Assert.Matches(@"req-[0-9a-f]+ POST /v1/chat/completions 200 model=metered-\w+ key=key-[0-9a-f]{8} [\d.]+ ms queue=[\d.]+ ms tokens=7\+4", line);
    }
}
