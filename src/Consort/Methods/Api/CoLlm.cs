using Consort.Decoding;
using Microsoft.Extensions.AI;

namespace Consort.Methods.Api;

/// <summary>What a co_llm deferral does.</summary>
public enum DeferralStrategy
{
    /// <summary>The mentor writes the token.</summary>
    [OptionValue("defer")] Defer,
    /// <summary>The token comes from (1 − p)·generator + p·mentor.</summary>
    [OptionValue("compose")] Compose,
}

/// <summary>Where co_llm's deferral probability comes from.</summary>
public enum DeferralSignal
{
    /// <summary>A logistic regression on the generator's distribution, trained on dev tokens.</summary>
    [OptionValue("classifier")] Classifier,
    /// <summary>1 − the generator's top-1 probability (training-free).</summary>
    [OptionValue("top1", "one_minus_top1")] Top1,
    /// <summary>The generator's entropy over log(vocabulary) (training-free).</summary>
    [OptionValue("entropy")] Entropy,
}

/// <summary>Options of <see cref="CoLlmMethod"/> (MoCo's names and defaults).</summary>
public sealed class CoLlmOptions : MethodOptions
{
    /// <summary>Defer when the deferral probability exceeds this.</summary>
    [Option("Defer a token when its deferral probability exceeds this (after the warm-up).", Min = 0, Max = 1)]
    public double DeferralThreshold { get; set; } = 0.5;

    /// <summary>defer or compose.</summary>
    [Option("defer: the mentor writes the token; compose: the token comes from (1 − p)·generator + p·mentor.")]
    public DeferralStrategy DeferralStrategy { get; set; } = DeferralStrategy.Defer;

    /// <summary>The deferral probability.</summary>
    [Option("Deferral probability: classifier (logistic regression on the generator's top-1 probability, entropy and margin, trained on dev tokens " +
            "labelled where the mentor predicts the reference token and the generator does not), top1 (1 − top-1 probability) or entropy (both training-free).")]
    public DeferralSignal Deferral { get; set; } = DeferralSignal.Classifier;

    /// <summary>Warm-up of the threshold.</summary>
    [Option("Threshold warm-up over the first tokens: none, linear (from 1 down to the threshold) or cosine.", Allowed = ["none", "linear", "cosine"])]
    public string ThresholdWarmupSchedule { get; set; } = "none";

    /// <summary>Warm-up length.</summary>
    [Option("Tokens the warm-up lasts.", Min = 1, Max = Limits.MaxGeneratedTokens)]
    public int ThresholdWarmupSteps { get; set; } = 15;

    /// <summary>Dev examples the classifier trains on.</summary>
    [Option("Dev examples the deferral classifier trains on (all when fewer).", Min = 1, Max = 1_000_000)]
    public int TrainingNum { get; set; } = 10000;

    /// <summary>Reference tokens per dev example.</summary>
    [Option("Most reference tokens per dev example the classifier reads.", Min = 1, Max = Limits.MaxGeneratedTokens)]
    public int MaxSequenceLength { get; set; } = 2048;

    /// <summary>MoCo's training set (a Hugging Face dataset).</summary>
    [Option("MoCo's training data set: accepted, no effect (Consort trains on the run's dev split).", Ignored = true, DefaultText = "-")]
    public string? TrainingDatasetName { get; set; }

    /// <summary>MoCo's training split.</summary>
    [Option("MoCo's training split: accepted, no effect.", Ignored = true, DefaultText = "-")]
    public string? TrainingSplit { get; set; }
}

/// <summary>
/// <c>co_llm</c> (MoCo's <c>api_collm</c> and <c>logit_co-llm</c>; Co-LLM): token-level deferral. The generator (first
/// member) decodes; at each token whose deferral probability exceeds the threshold (warmed up from 1 when asked), the
/// mentor (second member) supplies the token, or the two distributions are mixed by that probability. Both members
/// keep their KV cache and read every token; the mentor catches up only when it is asked. The deferral probability is
/// training-free (1 − top-1 probability, or normalized entropy) or a logistic regression trained on dev tokens. Members
/// must share one vocabulary (checked before any work).
/// </summary>
[CollaborationMethod("co_llm", CollaborationLevel.Api,
    "Token-level deferral: the generator decodes and hands single tokens to the mentor where its deferral probability is high.",
    Aliases = ["api_collm", "logit_co-llm", "collm"], Reference = "Co-LLM (Shen et al., 2024), https://arxiv.org/abs/2403.03870",
    Requires = ModelAccess.Text | ModelAccess.Tokens, SharedVocabulary = true, MinModels = 2, MaxModels = 2)]
public sealed class CoLlmMethod : CollaborationMethod<CoLlmOptions>
{
    /// <inheritdoc />
    protected override void Validate(CoLlmOptions options, MethodPlan plan)
    {
        if (options.Deferral == DeferralSignal.Classifier && !plan.HasDev)
            throw plan.Error("deferral", "= classifier needs a task with a dev split to train on; or set \"deferral\": \"top1\" or \"entropy\" (training-free)");
    }

    /// <summary>The classifier's features of a generator distribution: top-1 probability, normalized entropy, top-1 − top-2 margin.</summary>
    public static double[] Features(TokenDistribution d)
    {
        var lp = d.LogProbabilities();
        double top1 = double.NegativeInfinity, top2 = double.NegativeInfinity, h = 0;
        foreach (var l in lp)
        {
            if (l > top1) { top2 = top1; top1 = l; } else if (l > top2) top2 = l;
            if (l > -60) h -= Math.Exp(l) * l;
        }
        double p1 = Math.Exp(top1), p2 = double.IsFinite(top2) ? Math.Exp(top2) : 0;
        return [p1, h / Math.Log(Math.Max(2, lp.Length)), p1 - p2];
    }

    /// <inheritdoc />
    protected override async Task<ConsortModel> CreateAsync(MethodContext context, CoLlmOptions options, CancellationToken cancellationToken)
    {
        var models = context.Models;
        LogisticRegression? classifier = null;
        if (options.Deferral == DeferralSignal.Classifier)
        {
            var dev = context.Dev ?? throw new ConfigException($"method '{Name}': deferral = classifier needs a dev split");
            classifier = await TrainAsync(context, options, dev.Sample(options.TrainingNum, context.Seed), cancellationToken).ConfigureAwait(false);
        }
        var descriptor = DescriptorOf(context, options);
        return new ConsortModel(descriptor, new Client(descriptor, models[0], models[1], options, classifier, context.Seed), null, models, Name);
    }

    // Labels (MoCo's init "a"): at each reference token, 1 when the mentor's top-1 is the reference token and the
    // generator's is not. The reference is an answer the task scores correct (the mentor's, else the generator's),
    // else the gold text, so it is written the way these models write answers.
    private async Task<LogisticRegression> TrainAsync(MethodContext context, CoLlmOptions options, IReadOnlyList<FitExample> examples, CancellationToken ct)
    {
        var (gen, mentor) = (context.Models[0], context.Models[1]);
        var rows = await CollaborationChatClient.ParallelAsync(examples, context.MaxConcurrency, async (ex, _, c) =>
        {
            var o = options.Apply(ex.Options);
            var m = await mentor.Chat.GetResponseAsync(ex.Messages, o, c).ConfigureAwait(false);
            string reference;
            if (ex.Score(m.Text) >= 0.5) reference = m.Text;
            else
            {
                var g = await gen.Chat.GetResponseAsync(ex.Messages, o, c).ConfigureAwait(false);
                reference = ex.Score(g.Text) >= 0.5 ? g.Text : ex.Gold;
            }
            var ids = TokenTrack.ContinuationTokens(gen.Tokens!.Tokenizer, reference);
            if (ids.Length > options.MaxSequenceLength) ids = ids[..options.MaxSequenceLength];
            var result = new List<(double[] X, bool Y)>();
            if (ids.Length == 0) return result;
            using var gt = await TokenTrack.StartAsync(gen, ex.Messages, Name, c).ConfigureAwait(false);
            using var mt = await TokenTrack.StartAsync(mentor, ex.Messages, Name, c).ConfigureAwait(false);
            foreach (var id in ids)
            {
                var pg = await gt.NextAsync(c).ConfigureAwait(false);
                var pm = await mt.NextAsync(c).ConfigureAwait(false);
                result.Add((Features(pg), pm.ArgMax() == id && pg.ArgMax() != id));
                if (gt.Full || mt.Full) break;
                gt.ReadToken(id); mt.ReadToken(id);
            }
            return result;
        }, ct).ConfigureAwait(false);
        var all = rows.SelectMany(r => r).ToList();
        if (all.Count == 0) throw new ConsortException($"method '{Name}': no dev example gave a reference answer to train the deferral classifier on");
        var clf = LogisticRegression.Fit(all.Select(r => r.X).ToList(), all.Select(r => r.Y).ToList());
        context.Log?.Invoke($"co_llm: deferral classifier trained on {all.Count} tokens of {examples.Count} dev examples; {clf.PositiveRate:P1} labelled defer; training accuracy {clf.TrainingAccuracy:P1}");
        return clf;
    }

    private sealed class Client(ModelDescriptor descriptor, ConsortModel generator, ConsortModel mentor, CoLlmOptions settings, LogisticRegression? classifier, int seed)
        : CollaborationChatClient(descriptor)
    {
        private double DeferralProbability(TokenDistribution d) => settings.Deferral switch
        {
            DeferralSignal.Classifier => classifier!.Probability(Features(d)),
            DeferralSignal.Entropy => Features(d)[1],
            _ => 1 - TokenTrack.TopProbability(d),
        };

        protected override async Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct)
        {
            var decode = DecodeSettings.From(settings.Apply(options), seed);
            var sampler = decode.CreateSampler();
            using var weave = await TextWeave.StartAsync([generator, mentor], messages, decode, "co_llm", ct, sharedVocabulary: true).ConfigureAwait(false);
            var (gen, men) = (weave.Tracks[0], weave.Tracks[1]);
            int deferred = 0;
            bool ended = false;
            var positions = new List<int>();
            for (int step = 0; step < decode.MaxTokens && !weave.Stopped && !weave.Full; step++)
            {
                var pg = await gen.NextAsync(ct).ConfigureAwait(false);
                double p = DeferralProbability(pg);
                double threshold = DeferralSchedule.At(settings.ThresholdWarmupSchedule, settings.DeferralThreshold, settings.ThresholdWarmupSteps, step);
                int token, writer = 0;
                if (p > threshold)
                {
                    var pm = await men.NextAsync(ct).ConfigureAwait(false);
                    if (settings.DeferralStrategy == DeferralStrategy.Defer) token = sampler.Sample(pm);
                    else
                    {
                        var a = pg.LogProbabilities(); var b = pm.LogProbabilities();
                        var mixed = new float[a.Length];
                        for (int i = 0; i < a.Length; i++) mixed[i] = (float)Math.Log((1 - p) * Math.Exp(a[i]) + p * Math.Exp(b[i]) + 1e-30);
                        token = sampler.Sample(mixed);
                    }
                    writer = 1;
                }
                else token = sampler.Sample(pg);
                if (gen.IsEnd(token)) { ended = true; break; }
                if (writer == 1) { deferred++; positions.Add(step); }
                await weave.WriteAsync(writer, token, ct).ConfigureAwait(false);
            }
            int steps = weave.Steps;
            return weave.Finish(trace, ["generator", "mentor"], messages, new()
            {
                ["deferral"] = settings.Deferral.ToString().ToLowerInvariant(), ["threshold"] = settings.DeferralThreshold,
                ["deferred_tokens"] = deferred, ["tokens"] = steps, ["deferral_rate"] = steps == 0 ? 0.0 : (double)deferred / steps,
                ["deferred_at"] = positions, ["strong"] = mentor.Name,
            }, ended);
        }
    }
}
