using Consort.Telemetry;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Consort.Cli;

/// <summary>
/// Exports Consort's spans and metrics (<see cref="ConsortTelemetry"/>) over OTLP when an endpoint is given
/// (<c>--otlp URL</c> or <c>OTEL_EXPORTER_OTLP_ENDPOINT</c>): HTTP/protobuf to URL/v1/traces and URL/v1/metrics,
/// or gRPC when <c>OTEL_EXPORTER_OTLP_PROTOCOL=grpc</c>. Disposing flushes both.
/// </summary>
public static class TelemetrySetup
{
    /// <summary>Starts the exporters, or returns a no-op when no endpoint is set.</summary>
    /// <exception cref="ConfigException">The endpoint is not an http(s) URL.</exception>
    public static IDisposable Start(string? endpoint, string serviceName)
    {
        endpoint ??= Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT");
        if (string.IsNullOrWhiteSpace(endpoint)) return new Nothing();
        if (!Uri.TryCreate(endpoint, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            throw new ConfigException($"--otlp '{endpoint}': expected an http(s) URL such as http://127.0.0.1:4318");
        bool grpc = string.Equals(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_PROTOCOL"), "grpc", StringComparison.OrdinalIgnoreCase);
        Uri Signal(string path) => grpc ? uri : new Uri(uri.ToString().TrimEnd('/') + path);
        void Configure(OtlpExporterOptions o, string path)
        {
            o.Endpoint = Signal(path);
            o.Protocol = grpc ? OtlpExportProtocol.Grpc : OtlpExportProtocol.HttpProtobuf;
        }
        var resource = ResourceBuilder.CreateDefault().AddService(serviceName);
        var tracer = Sdk.CreateTracerProviderBuilder().SetResourceBuilder(resource).AddSource(ConsortTelemetry.Name)
            .AddOtlpExporter(o => Configure(o, "/v1/traces")).Build();
        var meter = Sdk.CreateMeterProviderBuilder().SetResourceBuilder(resource).AddMeter(ConsortTelemetry.Name)
            .AddOtlpExporter((o, reader) => { Configure(o, "/v1/metrics"); reader.PeriodicExportingMetricReaderOptions.ExportIntervalMilliseconds = 5000; }).Build();
        return new Both(tracer, meter);
    }

    private sealed class Nothing : IDisposable
    {
        public void Dispose() { }
    }

    private sealed class Both(TracerProvider? tracer, MeterProvider? meter) : IDisposable
    {
        public void Dispose()
        {
            tracer?.ForceFlush(5000);
            meter?.ForceFlush(5000);
            tracer?.Dispose();
            meter?.Dispose();
        }
    }
}
