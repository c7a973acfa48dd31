using Microsoft.Extensions.AI;

namespace Consort.Methods.Api;

/// <summary>Options of <see cref="CascadeMethod"/>.</summary>
public sealed class CascadeOptions : MethodOptions
{
    /// <summary>Confidence threshold per stage but the last; null = calibrated on dev.</summary>
    [Option("Confidence threshold per stage but the last; when absent, calibrated on dev.", DefaultText = "calibrated on dev")]
    public double[]? Thresholds { get; set; }

    /// <summary>Target share of queries each stage defers, for calibration.</summary>
    [Option("Target share of queries each stage defers, for calibration.", Min = 0, Max = 1)]
    public double DeferralRate { get; set; } = 0.5;

    /// <summary>Confidence measure.</summary>
    [Option("Confidence measure: mean (geometric-mean token probability), min, first, sum.")]
    public ConfidenceMeasure Confidence { get; set; } = ConfidenceMeasure.Mean;

    /// <summary>Dev examples used for calibration.</summary>
    [Option("Dev examples used for calibration.", Min = 1, Max = 100_000)]
    public int CalibrationSize { get; set; } = 32;
}

/// <summary>
/// <c>cascade</c>: models are tried cheapest first; a model's answer is kept when its confidence
/// (from its token probabilities) reaches that stage's threshold, otherwise the query is deferred to
/// the next model. Thresholds are given, or calibrated on the dev split (with the task's own generation
/// settings) so that a target share of queries is deferred at each stage.
/// </summary>
[CollaborationMethod("cascade", CollaborationLevel.Api,
    "Cheapest model first; defer to the next when token-probability confidence is under a calibrated threshold.",
    Aliases = ["api_cascade"], Reference = "FrugalGPT (Chen et al., 2023), https://arxiv.org/abs/2305.05176",
    Requires = ModelAccess.Text | ModelAccess.Tokens, MinModels = 2)]
public sealed class CascadeMethod : CollaborationMethod<CascadeOptions>
{
    /// <summary>Every stage but the last must expose token probabilities; the last only answers.</summary>
    protected override ModelAccess RequiresOf(int index, int count, CascadeOptions options) => index < count - 1 ? Metadata.Requires : ModelAccess.Text;

    /// <inheritdoc />
    protected override void Validate(CascadeOptions options, MethodPlan plan)
    {
        if (options.Thresholds is { } t)
        {
            if (t.Length != plan.Members.Count - 1)
                throw plan.Error("thresholds", $"needs {plan.Members.Count - 1} value(s) (one per model but the last), got {t.Length}");
        }
        else if (!plan.HasDev)
            throw plan.Error("needs 'thresholds' or a task with a dev split to calibrate them on");
    }

    /// <inheritdoc />
    protected override async Task<ConsortModel> CreateAsync(MethodContext context, CascadeOptions options, CancellationToken cancellationToken)
    {
        var models = context.Models;
        double[] thresholds;
        if (options.Thresholds is { } given) thresholds = given;
        else
        {
            if (context.Dev is not { Examples.Count: > 0 } dev)
                throw new ConfigException($"method '{Name}' needs 'thresholds' or a task with a dev split to calibrate them on");
            var examples = dev.Examples.Take(options.CalibrationSize).ToList();
            thresholds = new double[models.Count - 1];
            for (int i = 0; i < models.Count - 1; i++)
            {
                var confidences = await CollaborationChatClient.ParallelAsync(examples, context.MaxConcurrency, async (ex, _, ct) =>
                {
                    // Calibrate on outputs made the way test outputs will be made (the task's length, stop strings).
                    var r = await models[i].Chat.GetResponseAsync(ex.Messages, options.Apply(ex.Options).RequestingLogprobs(), ct).ConfigureAwait(false);
                    return Methods.Confidence.Of(r, options.Confidence) ?? throw new ConsortException($"model '{models[i].Name}' returned no token log-probabilities, which cascade needs");
                }, cancellationToken).ConfigureAwait(false);
                thresholds[i] = Quantile(confidences, options.DeferralRate);
                context.Log?.Invoke($"cascade: stage {i + 1} ('{models[i].Name}') threshold {thresholds[i]:G4} defers {options.DeferralRate:P0} of {examples.Count} dev examples");
            }
        }
        var descriptor = DescriptorOf(context, options);
        return new ConsortModel(descriptor, new Client(descriptor, models, thresholds, options), null, models, Name);
    }

    /// <summary>The value below which a share <paramref name="q"/> of <paramref name="values"/> lies
    /// (so that, with "defer when confidence &lt; threshold", about q of them defer).</summary>
    public static double Quantile(IReadOnlyList<double> values, double q)
    {
        var sorted = values.Order().ToArray();
        if (q <= 0) return double.NegativeInfinity;
        if (q >= 1) return double.PositiveInfinity;
        int idx = (int)Math.Round(q * sorted.Length);
        if (idx <= 0) return sorted[0];
        if (idx >= sorted.Length) return double.PositiveInfinity;
        // Midway between neighbours keeps ties on the intended side.
        return (sorted[idx - 1] + sorted[idx]) / 2;
    }

    private sealed class Client(ModelDescriptor descriptor, IReadOnlyList<ConsortModel> models, double[] thresholds, CascadeOptions settings)
        : CollaborationChatClient(descriptor)
    {
        protected override async Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct)
        {
            for (int i = 0; ; i++)
            {
                bool last = i == models.Count - 1;
                var o = settings.Apply(options);
                if (!last) o = o.RequestingLogprobs();
                double? confidence = null;
                var response = await CallAsync(models[i], messages, o, trace, last ? "final" : $"stage {i + 1}", ct, r =>
                {
                    confidence = last ? null : Confidence.Of(r, settings.Confidence);
                    return last ? null : new() { ["confidence"] = confidence, ["threshold"] = thresholds[i], ["deferred"] = !(confidence >= thresholds[i]) };
                }).ConfigureAwait(false);
                if (last || confidence >= thresholds[i]) return AnswerFrom(response.Text, models[i].Name);
            }
        }
    }
}
