using Microsoft.Extensions.AI;

namespace Consort.Methods.Api;

/// <summary>
/// <c>cascade</c>: models are tried cheapest first; a model's answer is kept when its confidence
/// (from its token probabilities) reaches that stage's threshold, otherwise the query is deferred to
/// the next model. Thresholds are given, or calibrated on the dev split so that a target share of
/// queries is deferred at each stage.
/// </summary>
public sealed class CascadeMethod : ICollaborationMethod, IMemberRequirements
{
    /// <inheritdoc />
    public string Name => "cascade";
    /// <inheritdoc />
    public CollaborationLevel Level => CollaborationLevel.Api;
    /// <inheritdoc />
    public string Description => "Cheapest model first; defer to the next when token-probability confidence is under a calibrated threshold.";
    /// <inheritdoc />
    public ModelAccess Requires => ModelAccess.Text | ModelAccess.Tokens;
    /// <inheritdoc />
    public bool RequiresSharedVocabulary => false;
    /// <inheritdoc />
    public int MinModels => 2;
    /// <inheritdoc />
    public int MaxModels => int.MaxValue;
    /// <inheritdoc />
    public IReadOnlyList<HyperparameterSpec> Hyperparameters =>
    [
        new("thresholds", "float[]", null, "Confidence threshold per stage but the last; when absent, calibrated on dev."),
        new("deferral_rate", "float", "0.5", "Target share of queries each stage defers, for calibration."),
        new("confidence", "string", "\"mean\"", "Confidence measure: mean (geometric-mean token probability), min, first, sum."),
        new("calibration_size", "int", "32", "Dev examples used for calibration."),
    ];

    /// <summary>Every stage but the last must expose token probabilities; the last only answers.</summary>
    public ModelAccess RequiresOf(int index, int count) => index < count - 1 ? Requires : ModelAccess.Text;

    /// <inheritdoc />
    public async Task<ConsortModel> CreateAsync(MethodContext context, CancellationToken cancellationToken = default)
    {
        var h = context.Hyperparameters;
        var settings = GenerationSettings.From(h);
        string measure = Confidence.Validate(h.Get("confidence", "mean"), Name);
        var models = context.Models;
        double[] thresholds;
        if (h.Has("thresholds"))
        {
            thresholds = h.Get<double[]>("thresholds", []);
            if (thresholds.Length != models.Count - 1)
                throw new ConfigException($"method '{Name}': 'thresholds' needs {models.Count - 1} value(s) (one per model but the last), got {thresholds.Length}");
        }
        else
        {
            double rate = h.Get("deferral_rate", 0.5);
            if (rate is < 0 or > 1) throw new ConfigException($"method '{Name}': deferral_rate must be within [0, 1], got {rate}");
            if (context.Dev is null || context.Dev.Examples.Count == 0)
                throw new ConfigException($"method '{Name}' needs 'thresholds' or a task with a dev split to calibrate them on");
            var examples = context.Dev.Examples.Take(Math.Max(1, h.Get("calibration_size", 32))).ToList();
            thresholds = new double[models.Count - 1];
            for (int i = 0; i < models.Count - 1; i++)
            {
                var confidences = await CollaborationChatClient.ParallelAsync(examples, context.MaxConcurrency, async (ex, _, ct) =>
                {
                    var r = await models[i].Chat.GetResponseAsync(ex.Messages, settings.Apply(null).RequestingLogprobs(), ct).ConfigureAwait(false);
                    return Confidence.Of(r, measure) ?? throw new ConsortException($"model '{models[i].Name}' returned no token log-probabilities, which cascade needs");
                }, cancellationToken).ConfigureAwait(false);
                thresholds[i] = Quantile(confidences, rate);
                context.Log?.Invoke($"cascade: stage {i + 1} ('{models[i].Name}') threshold {thresholds[i]:G4} defers {rate:P0} of {examples.Count} dev examples");
            }
        }
        var descriptor = new ModelDescriptor { Name = context.Name, Access = ModelAccess.Text, ContextSize = models.Min(m => m.Descriptor.ContextSize) };
        return new ConsortModel(descriptor, new Client(descriptor, models, thresholds, measure, settings), null, models, Name);
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

    private sealed class Client(ModelDescriptor descriptor, IReadOnlyList<ConsortModel> models, double[] thresholds, string measure, GenerationSettings settings)
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
                    confidence = last ? null : Confidence.Of(r, measure);
                    return last ? null : new() { ["confidence"] = confidence, ["threshold"] = thresholds[i], ["deferred"] = !(confidence >= thresholds[i]) };
                }).ConfigureAwait(false);
                if (last || confidence >= thresholds[i])
                {
                    var answer = Answer(response.Text);
                    answer.AdditionalProperties = new() { ["consort.answered_by"] = models[i].Name };
                    return answer;
                }
            }
        }
    }
}
