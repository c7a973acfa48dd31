using Consort.Decoding;
using Microsoft.Extensions.AI;

namespace Consort.Methods.Api;

/// <summary>Options of <see cref="NudgingMethod"/> (MoCo's names and defaults).</summary>
public sealed class NudgingOptions : MethodOptions
{
    /// <summary>The base model's top-1 probability under which the nudging model writes.</summary>
    [Option("The nudging model writes when the base model's top-1 probability is under this.", Min = 0, Max = 1, Aliases = ["threshold"])]
    public double Gamma { get; set; } = 0.4;

    /// <summary>Index of the base model among the members.</summary>
    [Option("Member index of the base model (0-based).", Min = 0, Max = Limits.MaxListOption)]
    public int BaseModelId { get; set; }

    /// <summary>Index of the nudging model.</summary>
    [Option("Member index of the nudging model (0-based).", Min = 0, Max = Limits.MaxListOption)]
    public int NudgingModelId { get; set; } = 1;

    /// <summary>Pick gamma on dev.</summary>
    [Option("Pick gamma on dev among gamma_candidates (best mean score).")]
    public bool SearchGamma { get; set; }

    /// <summary>Pick the nudging model on dev.</summary>
    [Option("Pick the nudging model on dev among all members but the base (best mean score).")]
    public bool SearchNudging { get; set; }

    /// <summary>Gamma values the dev search tries.</summary>
    [Option("Values search_gamma tries.", Min = 0, Max = 1)]
    public double[] GammaCandidates { get; set; } = [0.2, 0.3, 0.4, 0.5];

    /// <summary>Dev examples the searches score.</summary>
    [Option("Dev examples each search candidate is scored on.", Min = 1, Max = 1_000_000)]
    public int DevSize { get; set; } = 32;

    /// <summary>MoCo's sampling switch.</summary>
    [Option("Sample tokens (with the temperature); false = greedy.")]
    public bool DoSample { get; set; } = true;

    /// <summary>MoCo's KV-cache switch: Consort always keeps each model's cache.</summary>
    [Option("MoCo's KV-cache switch: accepted, no effect (each model always keeps its KV cache and reads only the text added).", Ignored = true, DefaultText = "-")]
    public bool? UseKvCache { get; set; }
}

/// <summary>
/// <c>nudging</c> (MoCo's <c>api_nudging</c>; Nudging, Fei et al. 2024): the base model decodes; where its top-1
/// probability falls under gamma, the nudging model writes the next complete word (its tokens are taken until one
/// starts a new word while the base is confident again), then the base continues. Members may have different
/// tokenizers: the hand-off is text. Each model keeps its KV cache and reads only the text added since its last step
/// (MoCo re-encodes the whole prefix at every step).
/// </summary>
[CollaborationMethod("nudging", CollaborationLevel.Api,
    "The base model decodes; where it is unsure (top-1 probability < gamma) the nudging model writes the next word(s).",
    Aliases = ["api_nudging"], Reference = "Nudging (Fei et al., 2024), https://arxiv.org/abs/2410.09300",
    Requires = ModelAccess.Text | ModelAccess.Tokens, MinModels = 2)]
public sealed class NudgingMethod : CollaborationMethod<NudgingOptions>
{
    /// <inheritdoc />
    protected override void Validate(NudgingOptions options, MethodPlan plan)
    {
        int n = plan.Members.Count;
        if (options.BaseModelId >= n) throw plan.Error("base_model_id", $"= {options.BaseModelId} is not a member index; valid: 0 to {n - 1}");
        if (options.NudgingModelId >= n) throw plan.Error("nudging_model_id", $"= {options.NudgingModelId} is not a member index; valid: 0 to {n - 1}");
        if (options.NudgingModelId == options.BaseModelId && !options.SearchNudging)
            throw plan.Error("nudging_model_id", $"= base_model_id ({options.BaseModelId}): the nudging model must be another member");
        if ((options.SearchGamma || options.SearchNudging) && !plan.HasDev)
            throw plan.Error(options.SearchGamma ? "search_gamma" : "search_nudging", "needs a task with a dev split to search on");
        if (options.GammaCandidates.Length == 0) throw plan.Error("gamma_candidates", "is empty");
    }

    /// <inheritdoc />
    protected override async Task<ConsortModel> CreateAsync(MethodContext context, NudgingOptions options, CancellationToken cancellationToken)
    {
        var models = context.Models;
        var b = models[options.BaseModelId];
        double gamma = options.Gamma;
        int nudger = options.NudgingModelId;
        if ((options.SearchGamma || options.SearchNudging) && context.Dev is { } dev)
        {
            var examples = dev.Sample(options.DevSize, context.Seed);
            var nudgers = options.SearchNudging ? Enumerable.Range(0, models.Count).Where(i => i != options.BaseModelId).ToArray() : [nudger];
            var gammas = options.SearchGamma ? options.GammaCandidates : [gamma];
            double best = double.NegativeInfinity;
            foreach (var nIndex in nudgers)
                foreach (var g in gammas)
                {
                    var client = new Client(DescriptorOf(context, options), b, models[nIndex], g, options, context.Seed);
                    var scores = await CollaborationChatClient.ParallelAsync(examples, context.MaxConcurrency, async (ex, _, ct) =>
                        ex.Score((await client.GetResponseAsync(ex.Messages, ex.Options, ct).ConfigureAwait(false)).Text), cancellationToken).ConfigureAwait(false);
                    double mean = scores.Average();
                    context.Log?.Invoke($"nudging: '{models[nIndex].Name}' nudging '{b.Name}' at gamma {g:G3}: dev score {mean:F3} on {examples.Count} examples");
                    if (mean > best) { best = mean; gamma = g; nudger = nIndex; }
                }
            context.Log?.Invoke($"nudging: chose '{models[nudger].Name}' as the nudging model, gamma {gamma:G3}");
        }
        var descriptor = DescriptorOf(context, options);
        return new ConsortModel(descriptor, new Client(descriptor, b, models[nudger], gamma, options, context.Seed), null, models, Name);
    }

    private sealed class Client(ModelDescriptor descriptor, ConsortModel baseModel, ConsortModel nudgingModel, double gamma, NudgingOptions settings, int seed)
        : CollaborationChatClient(descriptor)
    {
        protected override async Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct)
        {
            var decode = DecodeSettings.From(settings.Apply(options), seed);
            if (!settings.DoSample) decode = decode with { Temperature = 0 };
            var sampler = decode.CreateSampler();
            using var weave = await TextWeave.StartAsync([baseModel, nudgingModel], messages, decode, "nudging", ct).ConfigureAwait(false);
            var (b, n) = (weave.Tracks[0], weave.Tracks[1]);
            // MoCo's state machine: start in nudging mode; while nudging, keep the nudging model's tokens until one starts
            // a new word while the base is confident (top-1 >= gamma); in base mode, hand over when the base is unsure.
            bool nudging = true, ended = false;
            int accepted = 0, nudges = 0;
            for (int step = 0; step < decode.MaxTokens && !weave.Stopped && !weave.Full; step++)
            {
                var pb = await b.NextAsync(ct).ConfigureAwait(false);
                double top1 = TokenTrack.TopProbability(pb);
                int nToken = -1;
                string nText = "";
                if (nudging || top1 < gamma)
                {
                    nToken = sampler.Sample(await n.NextAsync(ct).ConfigureAwait(false));
                    nText = n.IsEnd(nToken) ? "" : n.PieceOf(nToken);
                }
                if (nudging && (accepted == 0 || !nText.Contains(' ') || top1 < gamma))
                {
                    if (n.IsEnd(nToken)) { ended = true; break; }
                    accepted++;
                    if (accepted == 1) nudges++;
                    await weave.WriteAsync(1, nToken, ct).ConfigureAwait(false);
                }
                else if (top1 >= gamma)
                {
                    if (nToken >= 0) n.CountSampled();
                    int token = sampler.Sample(pb);
                    if (b.IsEnd(token)) { ended = true; break; }
                    nudging = false; accepted = 0;
                    await weave.WriteAsync(0, token, ct).ConfigureAwait(false);
                }
                else
                {
                    if (n.IsEnd(nToken)) { ended = true; break; }
                    nudging = true; accepted = 1; nudges++;
                    await weave.WriteAsync(1, nToken, ct).ConfigureAwait(false);
                }
            }
            var by = weave.StepsBy.Length == 2 ? weave.StepsBy : [0, 0];
            return weave.Finish(trace, ["base", "nudging"], messages, new()
            {
                ["gamma"] = gamma, ["nudges"] = nudges, ["nudged_tokens"] = by[1], ["tokens"] = weave.Steps,
                ["deferral_rate"] = weave.Steps == 0 ? 0.0 : (double)by[1] / weave.Steps, ["strong"] = nudgingModel.Name,
            }, ended);
        }
    }
}
