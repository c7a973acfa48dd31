using Microsoft.Extensions.AI;

namespace Consort.Methods.Api;

/// <summary>How a cascade stage decides whether to keep its answer (MoCo's <c>mode</c>).</summary>
public enum CascadeMode
{
    /// <summary>Confidence from the answer's token probabilities against a threshold.</summary>
    [OptionValue("logit")] Logit,
    /// <summary>The stage is asked whether it is confident in its answer; a yes keeps it.</summary>
    [OptionValue("just_ask")] JustAsk,
}

/// <summary>Options of <see cref="CascadeMethod"/>.</summary>
public sealed class CascadeOptions : MethodOptions
{
    /// <summary>logit or just_ask.</summary>
    [Option("logit: keep a stage's answer when its token-probability confidence reaches the threshold; just_ask: ask the stage " +
            "whether it is confident in its answer (yes/no; unreadable replies defer) and keep it on yes (no token probabilities, no dev needed).")]
    public CascadeMode Mode { get; set; } = CascadeMode.Logit;

    /// <summary>Confidence threshold per stage but the last; null = calibrated on dev.</summary>
    [Option("Confidence threshold per stage but the last (mode logit); when absent, calibrated on dev.", DefaultText = "calibrated on dev")]
    public double[]? Thresholds { get; set; }

    /// <summary>Target share of queries each stage defers, for calibration (MoCo's <c>percentage</c>).</summary>
    [Option("Share of dev queries each stage defers (mode logit): the threshold is this quantile of the stage's dev confidences, " +
            "as MoCo's percentage.", Min = 0, Max = 1, Aliases = ["percentage"])]
    public double DeferralRate { get; set; } = 0.5;

    /// <summary>Confidence measure.</summary>
    [Option("Confidence measure (mode logit): mean (geometric-mean token probability), min, first, sum, average (arithmetic-mean token probability, MoCo's score).")]
    public ConfidenceMeasure Confidence { get; set; } = ConfidenceMeasure.Mean;

    /// <summary>Dev examples used for calibration.</summary>
    [Option("Dev examples used for calibration.", Min = 1, Max = 100_000)]
    public int CalibrationSize { get; set; } = 32;

    /// <summary>Role prompt overrides.</summary>
    [Option("Role prompt overrides (role: template); role 'ask' is the just_ask question put after the stage's answer.", DefaultText = "none")]
    public Dictionary<string, string>? Prompts { get; set; }

    /// <summary>A JSON file of role prompt overrides.</summary>
    [Option("JSON file of role prompt overrides.", DefaultText = "none")]
    public string? PromptsFile { get; set; }
}

/// <summary>
/// <c>cascade</c> (MoCo's <c>api_cascade</c>): N models are tried weakest first; a model's answer is kept when it is
/// confident, otherwise the query is deferred to the next model, and the last one answers whatever it says. Mode
/// <c>logit</c>: confidence from the answer's token probabilities against that stage's threshold, given or calibrated on
/// the dev split (with the task's own generation settings) so that a share of queries (<c>deferral_rate</c>, MoCo's
/// <c>percentage</c>) is deferred at each stage. Mode <c>just_ask</c>: after answering, the stage is asked whether it is
/// confident; a yes keeps the answer, a no or an unreadable reply defers. (MoCo asks inside the answer prompt and looks
/// for "unconfident" in the answer; asking afterwards keeps the scored answer free of the confidence remark.)
/// </summary>
[CollaborationMethod("cascade", CollaborationLevel.Api,
    "Cheapest model first; defer to the next when token-probability confidence is under a calibrated threshold.",
    Aliases = ["api_cascade"], Reference = "FrugalGPT (Chen et al., 2023), https://arxiv.org/abs/2305.05176",
    Requires = ModelAccess.Text | ModelAccess.Tokens, MinModels = 2)]
public sealed class CascadeMethod : CollaborationMethod<CascadeOptions>
{
    /// <summary>The just_ask question, put to a stage after its answer.</summary>
    public static readonly RolePrompts DefaultPrompts = new(new Dictionary<string, RolePrompts.Role>
    {
        ["ask"] = new("Are you confident that your answer is correct? Reply with yes or no."),
    });

    /// <summary>In mode logit every stage but the last must expose token probabilities; the last only answers.</summary>
    protected override ModelAccess RequiresOf(int index, int count, CascadeOptions options) =>
        index < count - 1 && options.Mode == CascadeMode.Logit ? Metadata.Requires : ModelAccess.Text;

    /// <inheritdoc />
    protected override void Validate(CascadeOptions options, MethodPlan plan)
    {
        DefaultPrompts.With(options.Prompts, options.PromptsFile, plan.BaseDirectory, plan.Where);
        if (options.Mode == CascadeMode.JustAsk)
        {
            if (options.Thresholds is not null) throw plan.Error("thresholds", "applies to mode 'logit' only; mode 'just_ask' keeps an answer when the model says it is confident");
            return;
        }
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
        var prompts = DefaultPrompts.With(options.Prompts, options.PromptsFile, context.BaseDirectory ?? Environment.CurrentDirectory, $"method '{Name}'");
        double[] thresholds;
        if (options.Mode == CascadeMode.JustAsk) thresholds = [];
        else if (options.Thresholds is { } given) thresholds = given;
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
        return new ConsortModel(descriptor, new Client(descriptor, models, thresholds, options, prompts, context.Answers), null, models, Name);
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

    private sealed class Client(ModelDescriptor descriptor, IReadOnlyList<ConsortModel> models, double[] thresholds, CascadeOptions settings,
        RolePrompts prompts, AnswerExtractor answers) : CollaborationChatClient(descriptor)
    {
        protected override async Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct)
        {
            for (int i = 0; ; i++)
            {
                bool last = i == models.Count - 1;
                if (settings.Mode == CascadeMode.JustAsk)
                {
                    var answer = await CallAsync(models[i], messages, settings.Apply(options), trace, last ? "final" : $"stage {i + 1}", ct).ConfigureAwait(false);
                    if (last || await ConfidentAsync(models[i], messages, answer, options, trace, $"stage {i + 1} / ask", ct).ConfigureAwait(false))
                        return AnswerFrom(answer.Text, models[i].Name);
                    continue;
                }
                var o = settings.Apply(options);
                if (!last) o = o.RequestingLogprobs();
                double? confidence = null;
                var response = await CallAsync(models[i], messages, o, trace, last ? "final" : $"stage {i + 1}", ct, r =>
                {
                    confidence = last ? null : Confidence.Of(r, settings.Confidence);
                    if (last) return null;
                    var data = new Dictionary<string, object?> { ["confidence"] = confidence, ["threshold"] = thresholds[i], ["deferred"] = !(confidence >= thresholds[i]) };
                    // Two stages are a router with one threshold: the strong member gets the query when the weak one's
                    // confidence is low, so the router evaluation can sweep it (lead = −confidence) from the baselines.
                    if (models.Count == 2 && confidence is { } c)
                    {
                        data["scores"] = new Dictionary<string, object?> { [models[0].Name] = c, [models[1].Name] = null };
                        data["strong"] = models[1].Name;
                        data["strong_advantage"] = -c;
                    }
                    return data;
                }).ConfigureAwait(false);
                if (last || confidence >= thresholds[i]) return AnswerFrom(response.Text, models[i].Name);
            }
        }

        // just_ask: the stage's answer stays in the conversation and the stage is asked about it; only a readable yes keeps it.
        private async Task<bool> ConfidentAsync(ConsortModel member, IReadOnlyList<ChatMessage> messages, ChatResponse answer, ChatOptions? options,
            CallTrace trace, string role, CancellationToken ct)
        {
            var question = prompts.Render("ask", new Dictionary<string, string>(), AnswerExtractor.From(options, answers));
            List<ChatMessage> conversation = [.. messages, new ChatMessage(ChatRole.Assistant, answer.Text), new ChatMessage(ChatRole.User, question)];
            var o = settings.Apply(options);
            o.MaxOutputTokens = Math.Min(o.MaxOutputTokens ?? AskTokens, AskTokens);
            o.StopSequences = null; // the task's stop strings are for answers, not for the yes/no
            bool? yes = null;
            await CallAsync(member, conversation, o, trace, role, ct, r =>
            {
                yes = YesNo.Parse(r.Text);
                return new() { ["confident"] = yes, ["unreadable"] = yes is null, ["deferred"] = yes != true };
            }).ConfigureAwait(false);
            return yes == true;
        }
    }

    // A yes or a no, with room for "Yes, I am." and a leading newline.
    private const int AskTokens = 8;
}
