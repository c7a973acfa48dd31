using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Http;

namespace Consort.Server.Tests;

/// <summary>What a scripted OpenAI-compatible upstream does with a streamed chat request.</summary>
public enum StreamFault { None, Cut, Stall, NoFinish }

/// <summary>Helpers that make a <see cref="StubServer"/> answer like an OpenAI chat endpoint (JSON or SSE), with faults.</summary>
internal static class UpstreamStub
{
    public static Task<StubServer> StartAsync(string[] words, StreamFault fault, int faultAfter = 2, int status = 200) =>
        StubServer.StartAsync(async (ctx, _) =>
        {
            if (status != 200)
            {
                await StubServer.Json(ctx, """{"error":{"message":"scripted failure","type":"server_error","param":null,"code":null}}""", status);
                return;
            }
            await WriteAsync(ctx, words, fault, faultAfter);
        });

    public static async Task WriteAsync(HttpContext ctx, string[] words, StreamFault fault, int faultAfter)
    {
        var body = JsonNode.Parse((string)ctx.Items["body"]!)!;
        if (body["stream"]?.GetValue<bool>() != true)
        {
            var msg = new JsonObject
            {
                ["id"] = "c1", ["object"] = "chat.completion", ["created"] = 0, ["model"] = "m",
                ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = string.Join(" ", words) }, ["finish_reason"] = "stop" }),
                ["usage"] = new JsonObject { ["prompt_tokens"] = 3, ["completion_tokens"] = words.Length, ["total_tokens"] = 3 + words.Length },
            };
            await StubServer.Json(ctx, msg.ToJsonString());
            return;
        }
        ctx.Response.ContentType = "text/event-stream";
        for (int i = 0; i < words.Length; i++)
        {
            if (i == faultAfter)
            {
                // The words sent so far reach the client before the connection drops.
                if (fault == StreamFault.Cut) { await ctx.Response.Body.FlushAsync(); await Task.Delay(300); ctx.Abort(); return; }
                if (fault == StreamFault.Stall) { await Task.Delay(TimeSpan.FromSeconds(60), ctx.RequestAborted); return; }
                if (fault == StreamFault.NoFinish) { await ctx.Response.WriteAsync("data: [DONE]\n\n"); return; }
            }
            await Event(ctx, new JsonObject { ["content"] = i == 0 ? words[i] : " " + words[i] }, null);
        }
        await Event(ctx, new JsonObject(), "stop");
        await ctx.Response.WriteAsync("data: [DONE]\n\n");
    }

    private static async Task Event(HttpContext ctx, JsonObject delta, string? finish)
    {
        var chunk = new JsonObject
        {
            ["id"] = "c1", ["object"] = "chat.completion.chunk", ["created"] = 0, ["model"] = "m",
            ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = delta, ["finish_reason"] = finish }),
        };
        await ctx.Response.WriteAsync("data: " + chunk.ToJsonString() + "\n\n");
        await ctx.Response.Body.FlushAsync();
    }

    /// <summary>Consort's own OpenAI backend pointed at a stub (no retries, text access only).</summary>
    public static ConsortModel Model(string name, StubServer stub) =>
        Consort.OpenAI.OpenAIModelFactory.Create(new Consort.OpenAI.OpenAIModelOptions
        {
            Name = name, BaseUrl = stub.BaseUrl, Model = "m", TopLogprobs = 0, MaxRetries = 0, Timeout = TimeSpan.FromSeconds(30),
        });
}
