using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace Consort.Server.Tests;

/// <summary>Hostile requests: each answered 4xx in the OpenAI error shape, and the server stays healthy after all of them.</summary>
public sealed class HostileRequestTests
{
    private static JsonObject Chat(string text) =>
        new() { ["model"] = "alpha", ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = text }) };

    private static async Task<(int Status, JsonNode? Json)> PostRaw(RunningServer s, string path, byte[] body)
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var resp = await s.Http.PostAsync(path, content);
        string text = await resp.Content.ReadAsStringAsync();
        return ((int)resp.StatusCode, text.Length > 0 ? JsonNode.Parse(text) : null);
    }

    private static async Task AssertHealthy(RunningServer s)
    {
        var h = JsonNode.Parse(await new HttpClient().GetStringAsync(s.Url + "/health"))!;
        Assert.Equal("ok", h["status"]!.GetValue<string>());
        Assert.Equal(0, h["in_flight"]!.GetValue<int>());
        Assert.Equal(200, (await s.PostAsync("/v1/chat/completions", Chat("still fine"))).Status);
    }

    [Fact]
    public async Task Malformed_huge_nested_and_invalid_utf8_bodies_are_4xx_in_openai_shape()
    {
        await using var s = await RunningServer.StartAsync([Fakes.Model("alpha")], new ServerOptions { MaxBodyBytes = 64 * 1024 });
        var bodies = new List<(string What, byte[] Body)>
        {
            ("malformed", Encoding.UTF8.GetBytes("{\"model\": \"alpha\", \"messages\": [")),
            ("not an object", Encoding.UTF8.GetBytes("[1, 2, 3]")),
            ("empty", []),
            ("huge", Encoding.UTF8.GetBytes(Chat(new string('x', 200_000)).ToJsonString())),
            ("deeply nested", Encoding.UTF8.GetBytes(new string('[', 5000) + new string(']', 5000))),
            ("deeply nested field", Encoding.UTF8.GetBytes("{\"model\":\"alpha\",\"metadata\":" + new string('[', 3000) + new string(']', 3000) + "}")),
            ("invalid utf-8", [.. Encoding.UTF8.GetBytes("{\"model\":\"alpha\",\"messages\":[{\"role\":\"user\",\"content\":\""), 0xff, 0xfe, 0xc3, .. Encoding.UTF8.GetBytes("\"}]}")]),
            ("nul bytes", Encoding.UTF8.GetBytes("{\"model\":\"alpha\"\0}")),
        };
        foreach (var (what, body) in bodies)
        {
            var (status, json) = await PostRaw(s, "/v1/chat/completions", body);
            Assert.True(status is >= 400 and < 500, $"{what}: {status}");
            OpenAISurfaceTests.AssertOpenAIError(json);
        }

        // A huge body with no Content-Length (chunked) is cut off at the limit too.
        using var chunked = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes(Chat(new string('y', 300_000)).ToJsonString())));
        chunked.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = chunked };
        req.Headers.TransferEncodingChunked = true;
        using var resp = await s.Http.SendAsync(req);
        Assert.Equal(HttpStatusCode.BadRequest, resp.StatusCode);
        OpenAISurfaceTests.AssertOpenAIError(JsonNode.Parse(await resp.Content.ReadAsStringAsync()), code: "request_too_large");
        await AssertHealthy(s);
    }

    [Fact]
    public async Task Thousands_of_messages_and_bad_numbers_in_every_numeric_field_are_400()
    {
        await using var s = await RunningServer.StartAsync([Fakes.Model("alpha")], new ServerOptions { MaxBodyBytes = 1 << 20 });
        var many = Chat("x");
        for (int i = 0; i < 5000; i++) many["messages"]!.AsArray().Add(new JsonObject { ["role"] = "user", ["content"] = "m" });
        var (st, j) = await s.PostAsync("/v1/chat/completions", many);
        Assert.Equal(400, st);
        OpenAISurfaceTests.AssertOpenAIError(j, "messages", "too_many_messages");

        string[] chatFields = ["max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "seed", "n", "top_logprobs", "frequency_penalty", "presence_penalty"];
        JsonNode[] bad = [-1, -1e30, 1e30, 1e308, JsonValue.Create(long.MaxValue), JsonValue.Create(long.MinValue), 3.5, "12", true];
        foreach (var field in chatFields)
            foreach (var value in bad)
            {
                // Only values that are valid for the field may pass: everything else is a 400 naming the field.
                if (Number(value) is { } d && Valid(field, d)) continue;
                var body = Chat("x");
                body[field] = value.DeepClone();
                var (status, json) = await s.PostAsync("/v1/chat/completions", body);
                Assert.True(status == 400, $"{field} = {value.ToJsonString()}: {status} {json?.ToJsonString()}");
                OpenAISurfaceTests.AssertOpenAIError(json, field);
            }
        string[] completionFields = ["max_tokens", "temperature", "top_p", "seed", "logprobs", "n"];
        foreach (var field in completionFields)
            foreach (var value in bad)
            {
                if (Number(value) is { } d && Valid(field, d)) continue;
                var body = new JsonObject { ["model"] = "alpha", ["prompt"] = "p", [field] = value.DeepClone() };
                var (status, json) = await s.PostAsync("/v1/completions", body);
                Assert.True(status == 400, $"completions {field} = {value.ToJsonString()}: {status}");
                OpenAISurfaceTests.AssertOpenAIError(json, field);
            }
        await AssertHealthy(s);
    }

    private static double? Number(JsonNode n) =>
        double.TryParse(n.ToJsonString(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var d) ? d : null;

    private static bool Valid(string field, double d) => field switch
    {
        "seed" => d == Math.Floor(d) && Math.Abs(d) <= 9.3e18,
        "temperature" => d is >= 0 and <= 2,
        "frequency_penalty" or "presence_penalty" => d is >= -2 and <= 2,
        _ => false,
    };

    [Fact]
    public async Task A_client_that_disconnects_mid_stream_cancels_the_inner_call_and_frees_its_slot()
    {
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var slow = new FakeChatClient("alpha") { WordDelay = TimeSpan.FromMilliseconds(200), Before = ct => { ct.Register(() => cancelled.TrySetResult()); return Task.CompletedTask; } };
        await using var s = await RunningServer.StartAsync([Fakes.Model("alpha", slow)], new ServerOptions { MaxConcurrentRequests = 1 });
        var body = Chat("a b c d e f g h i j k l m n o p");
        body["stream"] = true;
        // A raw socket, so the test controls exactly when the connection drops: after the first event.
        var uri = new Uri(s.Url);
        using (var tcp = new TcpClient())
        {
            await tcp.ConnectAsync(uri.Host, uri.Port);
            var stream = tcp.GetStream();
            string json = body.ToJsonString();
            string head = $"POST /v1/chat/completions HTTP/1.1\r\nHost: {uri.Authority}\r\nAuthorization: Bearer test-key\r\nContent-Type: application/json\r\nContent-Length: {Encoding.UTF8.GetByteCount(json)}\r\n\r\n";
            await stream.WriteAsync(Encoding.UTF8.GetBytes(head + json));
            var buf = new byte[4096];
            var seen = new StringBuilder();
            while (!seen.ToString().Contains("data: ")) seen.Append(Encoding.UTF8.GetString(buf, 0, await stream.ReadAsync(buf)));
        }
        await cancelled.Task.WaitAsync(TimeSpan.FromSeconds(10));
        for (int i = 0; i < 100 && JsonNode.Parse(await new HttpClient().GetStringAsync(s.Url + "/health"))!["in_flight"]!.GetValue<int>() > 0; i++) await Task.Delay(50);
        await AssertHealthy(s); // the only slot is free again
    }
}
