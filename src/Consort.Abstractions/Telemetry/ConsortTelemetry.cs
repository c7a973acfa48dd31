using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Text.RegularExpressions;
using Microsoft.Extensions.AI;

namespace Consort.Telemetry;

/// <summary>
/// Consort's OpenTelemetry sources, both named <see cref="Name"/>: an <see cref="ActivitySource"/> with one span per
/// model call (a collaboration's span holds one child span per inner call, tagged with method, member, role, round,
/// tokens and cost) and a <see cref="Meter"/> with token, latency and error instruments. Nothing is recorded unless
/// a listener (an OpenTelemetry SDK, <c>consort chat</c>'s view) subscribes.
/// </summary>
public static partial class ConsortTelemetry
{
    /// <summary>Name of the activity source and the meter.</summary>
    public const string Name = "Consort";

    /// <summary>Span source.</summary>
    public static ActivitySource Source { get; } = new(Name);
    /// <summary>Metrics.</summary>
    public static Meter Meter { get; } = new(Name);

    /// <summary>Tokens read and written by model calls (tag <c>consort.direction</c>: input or output; <c>consort.model</c>).</summary>
    public static Counter<long> Tokens { get; } = Meter.CreateCounter<long>("consort.tokens", "{token}", "Tokens processed by model calls");
    /// <summary>Duration of model calls in milliseconds (tags <c>consort.model</c>, <c>consort.method</c>).</summary>
    public static Histogram<double> Latency { get; } = Meter.CreateHistogram<double>("consort.call.duration", "ms", "Duration of model calls");
    /// <summary>Failed model calls (tags <c>consort.model</c>, <c>error.type</c>).</summary>
    public static Counter<long> Errors { get; } = Meter.CreateCounter<long>("consort.call.errors", "{call}", "Model calls that failed");

    /// <summary>Span of one call to a model (or collaboration) made outside a collaboration; its inner calls nest under it.</summary>
    /// <param name="model">The model called.</param>
    /// <param name="method">Its method, for a collaboration.</param>
    /// <param name="operation">What the call is for (e.g. "evaluate", "chat").</param>
    public static InnerCall StartCall(ModelDescriptor model, string? method, string operation)
    {
        var activity = Source.StartActivity($"{operation} {model.Name}", ActivityKind.Internal);
        activity?.SetTag("consort.model", model.Name);
        if (method is not null) activity?.SetTag("consort.method", method);
        activity?.SetTag("consort.operation", operation);
        return new InnerCall(activity, model, method, null, null);
    }

    /// <summary>
    /// Span of one inner call of a collaboration: a child of the collaboration's span, whose method it names, tagged
    /// with the member, its role and the round (read from roles such as "round 2 ..."). Call <see cref="InnerCall.Complete"/>
    /// with the response; a call disposed without it counts as failed.
    /// </summary>
    public static InnerCall StartInnerCall(ModelDescriptor member, string role)
    {
        var parent = Activity.Current;
        string? method = parent?.GetTagItem("consort.method") as string;
        var activity = Source.StartActivity($"call {member.Name}", ActivityKind.Internal);
        int? round = Round().Match(role) is { Success: true } m ? int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : null;
        if (activity is not null)
        {
            activity.SetTag("consort.member", member.Name);
            activity.SetTag("consort.role", role);
            if (method is not null) activity.SetTag("consort.method", method);
            if (round is not null) activity.SetTag("consort.round", round);
        }
        return new InnerCall(activity, member, method, role, round);
    }

    [GeneratedRegex(@"\bround\s*(\d+)", RegexOptions.IgnoreCase)]
    private static partial Regex Round();

    /// <summary>Raised when a call (inner or outer) ends, in the thread that ended it: what <c>consort chat</c> prints.</summary>
    public static event Action<CallRecord>? CallCompleted;

    internal static void Raise(CallRecord record) => CallCompleted?.Invoke(record);
}

/// <summary>A finished call, as <see cref="ConsortTelemetry.CallCompleted"/> reports it.</summary>
/// <param name="Model">Member or model name.</param>
/// <param name="Method">The collaboration's method, when known.</param>
/// <param name="Role">Role in the method (null for an outer call).</param>
/// <param name="Round">Round, when the role names one.</param>
/// <param name="Output">Output text (null on failure).</param>
/// <param name="InputTokens">Input tokens.</param>
/// <param name="OutputTokens">Output tokens.</param>
/// <param name="Cost">Cost, when priced.</param>
/// <param name="Elapsed">Duration.</param>
/// <param name="Error">The failure, or null.</param>
/// <param name="Depth">Nesting depth (0 for an outer call).</param>
public sealed record CallRecord(string Model, string? Method, string? Role, int? Round, string? Output, long InputTokens, long OutputTokens,
    decimal? Cost, TimeSpan Elapsed, string? Error, int Depth);

/// <summary>A call in progress: ends its span and records metrics once.</summary>
public sealed class InnerCall : IDisposable
{
    private readonly Activity? _activity;
    private readonly ModelDescriptor _model;
    private readonly string? _method, _role;
    private readonly int? _round;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly int _depth;
    private bool _done;

    internal InnerCall(Activity? activity, ModelDescriptor model, string? method, string? role, int? round)
    {
        _activity = activity; _model = model; _method = method; _role = role; _round = round;
        for (var a = activity?.Parent; a is not null; a = a.Parent)
            if (a.Source.Name == ConsortTelemetry.Name) _depth++;
    }

    /// <summary>The span, when someone listens.</summary>
    public Activity? Activity => _activity;

    /// <summary>Records the response: tokens, cost, latency.</summary>
    public void Complete(ChatResponse response)
    {
        if (_done) return;
        _done = true;
        long inTok = response.Usage?.InputTokenCount ?? 0, outTok = response.Usage?.OutputTokenCount ?? 0;
        var cost = response.GetCost() ?? _model.CostOf(inTok, outTok);
        var elapsed = _clock.Elapsed;
        if (_activity is not null)
        {
            _activity.SetTag("consort.tokens.input", inTok);
            _activity.SetTag("consort.tokens.output", outTok);
            if (cost is { } c) _activity.SetTag("consort.cost", (double)c);
            _activity.SetStatus(ActivityStatusCode.Ok);
            _activity.Dispose();
        }
        var model = new KeyValuePair<string, object?>("consort.model", _model.Name);
        ConsortTelemetry.Tokens.Add(inTok, model, new("consort.direction", "input"));
        ConsortTelemetry.Tokens.Add(outTok, model, new("consort.direction", "output"));
        ConsortTelemetry.Latency.Record(elapsed.TotalMilliseconds, model, new("consort.method", _method));
        ConsortTelemetry.Raise(new CallRecord(_model.Name, _method, _role, _round, response.Text, inTok, outTok, cost, elapsed, null, _depth));
    }

    /// <summary>Records a failure (also what disposing without <see cref="Complete"/> does).</summary>
    public void Fail(Exception? error)
    {
        if (_done) return;
        _done = true;
        string type = error?.GetType().Name ?? "cancelled_or_failed";
        if (_activity is not null)
        {
            _activity.SetStatus(ActivityStatusCode.Error, error?.Message);
            _activity.SetTag("error.type", type);
            _activity.Dispose();
        }
        ConsortTelemetry.Errors.Add(1, new("consort.model", _model.Name), new("error.type", type));
        ConsortTelemetry.Raise(new CallRecord(_model.Name, _method, _role, _round, null, 0, 0, null, _clock.Elapsed, error?.Message ?? "failed", _depth));
    }

    /// <inheritdoc />
    public void Dispose() => Fail(null);
}
