using System.Diagnostics;
using System.Text.Json.Nodes;
using Consort.Caching;
using Consort.Config;
using Consort.Methods;
using Consort.Telemetry;
using Consort.Testing;
using Microsoft.Extensions.AI;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Consort.Tests.Telemetry;

/// <summary>Spans and metrics through the OpenTelemetry SDK's in-memory exporter, over a real collaboration of llama.cpp models.</summary>
public sealed class TelemetryTests
{
    [Fact]
    public async Task EveryInnerCallIsASpanWithMethodMemberRoleTokensAndMetricsCountThem()
    {
        var spans = new List<Activity>();
        var metrics = new List<Metric>();
        using var tracer = Sdk.CreateTracerProviderBuilder().AddSource(ConsortTelemetry.Name).AddInMemoryExporter(spans).Build();
        using var meter = Sdk.CreateMeterProviderBuilder().AddMeter(ConsortTelemetry.Name).AddInMemoryExporter(metrics).Build();

        var pool = new Dictionary<string, ModelSpec>();
        var config = RunConfig.Parse(JsonNode.Parse($$"""
            { "method": "majority_vote", "hyperparameters": { "samples": 1 },
              "models": [ { "name": "s", "path": "{{TestPaths.Stories260K}}" }, { "name": "x", "path": "{{TestPaths.Llama2Xs}}" } ] }
            """)!.AsObject(), TestPaths.RepoRoot);
        var decorator = new ModelDecorator();
        using var session = new ModelSession { Decorate = decorator.Decorate };
        var vote = await session.BuildAsync(config.Runs[0].Model);
        var response = await vote.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "Once upon a time")], new ChatOptions { Temperature = 0, MaxOutputTokens = 8 });
        tracer!.ForceFlush();
        meter!.ForceFlush();

        var collab = Assert.Single(spans, s => s.GetTagItem("consort.operation") as string == "collaborate");
        Assert.Equal("majority_vote", collab.GetTagItem("consort.method"));
        var inner = spans.Where(s => s.ParentSpanId == collab.SpanId).ToList();
        Assert.Equal(2, inner.Count);
        Assert.Equal(["s", "x"], inner.Select(s => (string)s.GetTagItem("consort.member")!).Order());
        Assert.All(inner, s =>
        {
            Assert.Equal("majority_vote", s.GetTagItem("consort.method"));
            Assert.StartsWith("sample", (string)s.GetTagItem("consort.role")!);
            Assert.True((long)s.GetTagItem("consort.tokens.input")! > 0);
            Assert.True((long)s.GetTagItem("consort.tokens.output")! > 0);
            Assert.Equal(ActivityStatusCode.Ok, s.Status);
        });
        long traced = response.GetTrace().Sum(t => t.OutputTokens);
        Assert.Equal(traced, inner.Sum(s => (long)s.GetTagItem("consort.tokens.output")!));

        long Sum(string name, Func<MetricPoint, bool>? where = null)
        {
            long total = 0;
            foreach (var m in metrics.Where(m => m.Name == name))
                foreach (ref readonly var p in m.GetMetricPoints())
                    if (where is null || where(p)) total += m.MetricType == MetricType.Histogram ? p.GetHistogramCount() : p.GetSumLong();
            return total;
        }
        static string? Tag(MetricPoint p, string key)
        {
            foreach (var t in p.Tags) if (t.Key == key) return t.Value?.ToString();
            return null;
        }
        Assert.True(Sum("consort.tokens", p => Tag(p, "consort.direction") == "output") >= traced);
        Assert.True(Sum("consort.call.duration") >= 3); // two inner calls and the collaboration's own

        // A failing inner call is a span with an error status and counts as an error.
        using (var failing = ConsortTelemetry.StartInnerCall(new ModelDescriptor { Name = "down", Access = ModelAccess.Text }, "round 2 critique"))
            failing.Fail(new HttpRequestException("connection refused"));
        tracer.ForceFlush();
        meter.ForceFlush();
        var failed = spans.Last();
        Assert.Equal(ActivityStatusCode.Error, failed.Status);
        Assert.Equal(2, failed.GetTagItem("consort.round"));
        Assert.True(Sum("consort.call.errors") >= 1);
    }
}
