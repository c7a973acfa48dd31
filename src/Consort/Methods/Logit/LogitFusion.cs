using System.Diagnostics;
using Consort.Decoding;
using Consort.Methods.Logit.Alignment;
using Microsoft.Extensions.AI;

namespace Consort.Methods.Logit;

/// <summary>Options of <see cref="LogitFusionMethod"/>.</summary>
public sealed class LogitFusionOptions : MethodOptions
{
    /// <summary>One weight per model.</summary>
    [Option("One weight per model (default uniform).", Min = 0, DefaultText = "uniform")]
    public double[]? Weights { get; set; }

    /// <summary>How distributions are combined.</summary>
    [Option("prob: weighted mixture of probabilities; logprob: weighted sum of log-probabilities (product of experts).")]
    public FusionCombine Combine { get; set; } = FusionCombine.Prob;

    /// <summary>Fit the weights on the dev split.</summary>
    [Option("Fit the weights on the dev split to minimize the loss of the gold answers (EM for prob, a grid for logprob).")]
    public bool FitWeights { get; set; }

    /// <summary>How the members' tokens are lined up.</summary>
    [Option("vocabulary: members share one vocabulary (exact, fast); bytes: each member is seen byte by byte, its token distribution marginalized over tokenizations, so members with different tokenizers fuse (needs full logits).")]
    public FusionAlign Align { get; set; } = FusionAlign.Vocabulary;

    /// <summary>Tokenizations kept per member and byte with <c>align: bytes</c>.</summary>
    [Option("With align: bytes, the tokenizations (and branches) kept per member and byte; each member needs 2 x beam free sequences per fused sequence.", Min = 1, Max = 16)]
    public int Beam { get; set; } = 4;
}

/// <summary>How <see cref="LogitFusionMethod"/> lines up its members' tokens.</summary>
public enum FusionAlign
{
    /// <summary>One shared vocabulary: token ids line up.</summary>
    [OptionValue("vocabulary", "tokens", "none")]
    Vocabulary,
    /// <summary>Byte level: every member becomes a model over bytes (<see cref="ByteLevelTokenModel"/>).</summary>
    [OptionValue("bytes", "text", "byte")]
    Bytes,
}

/// <summary>
/// <c>logit_fusion</c>: decode with a weighted combination of the members' next-token distributions
/// (a mixture of probabilities or a product of experts). Members share one vocabulary, or, with <c>align: bytes</c>,
/// each is seen byte by byte so different tokenizers fuse; members that give only top-k logprobs (endpoints) are fused
/// over the union of their top-k sets and the result is marked approximate. Weights can
/// be fitted on dev data to minimize the fused model's loss on the gold answers. The result offers chat
/// and token access, so fusions nest and can be scored.
/// </summary>
[CollaborationMethod("logit_fusion", CollaborationLevel.Logit, "Decode with a weighted mixture (or product) of the members' next-token distributions.",
    Aliases = ["logit_logit_fusion"], Requires = ModelAccess.Tokens, MinModels = 2)]
public sealed class LogitFusionMethod : CollaborationMethod<LogitFusionOptions>
{
    /// <inheritdoc />
    protected override ModelAccess RequiresOf(int index, int count, LogitFusionOptions options) =>
        options.Align == FusionAlign.Bytes ? ModelAccess.FullLogits : ModelAccess.Tokens;

    /// <inheritdoc />
    protected override void Validate(LogitFusionOptions options, MethodPlan plan)
    {
        // Byte-level alignment is what makes different vocabularies fusable; otherwise token ids must line up.
        if (options.Align == FusionAlign.Vocabulary) CheckSharedVocabulary(plan);
        if (options.Weights is { } w)
        {
            if (w.Length != plan.Members.Count)
                throw plan.Error("weights", $"has {w.Length} values for {plan.Members.Count} models ({string.Join(", ", plan.Members.Select(m => m.Name))})");
            if (w.Sum() <= 0) throw plan.Error("weights", "sum to zero");
        }
        if (options.FitWeights && !plan.HasDev)
            throw plan.Error("fit_weights", "needs dev examples (run it with a task that has a dev split)");
    }

    /// <inheritdoc />
    protected override ModelDescriptor Describe(LogitFusionOptions options, MethodPlan plan) => options.Align == FusionAlign.Bytes ? new()
    {
        Name = plan.Name,
        Access = ModelAccess.Text | ModelAccess.FullLogits,
        Vocabulary = ByteVocabulary.Identity,
        ContextSize = plan.MinContextSize,
        Architecture = "fusion",
    } : new()
    {
        Name = plan.Name,
        Access = ModelAccess.Text | (plan.Members.All(m => m.Access.HasFlag(ModelAccess.FullLogits)) ? ModelAccess.FullLogits : ModelAccess.TopKLogprobs),
        TopK = plan.Members.All(m => m.Access.HasFlag(ModelAccess.FullLogits)) ? null : plan.Members.Where(m => m.TopK is not null).Select(m => m.TopK).Min(),
        Vocabulary = plan.Members[0].Vocabulary,
        ContextSize = plan.MinContextSize,
        Architecture = "fusion",
    };

    /// <inheritdoc />
    protected override async Task<ConsortModel> CreateAsync(MethodContext context, LogitFusionOptions options, CancellationToken cancellationToken)
    {
        var models = context.Models;
        foreach (var m in models)
            if (m.Tokens is null)
                throw new ConfigException($"method '{Name}' needs token distributions from model '{m.Name}', which offers only {m.Descriptor.AccessDescription}");
        double[] weights = options.Weights ?? Enumerable.Repeat(1.0 / models.Count, models.Count).ToArray();
        List<ITokenModel> members;
        IChatPromptEncoder encoder;
        if (options.Align == FusionAlign.Bytes)
        {
            // Chat templates are per tokenizer; at byte level every member reads the same plain rendering.
            members = models.Select(m => (ITokenModel)new ByteLevelTokenModel(m.Tokens!, options.Beam)).ToList();
            encoder = new PlainPromptEncoder(ByteVocabulary.Instance, addBos: true);
        }
        else
        {
            members = models.Select(m => m.Tokens!).ToList();
            encoder = models[0].Chat.GetService(typeof(IChatPromptEncoder)) as IChatPromptEncoder
                      ?? new PlainPromptEncoder(members[0].Tokenizer, members[0].Tokenizer.Bos is not null);
        }

        if (options.FitWeights)
        {
            if (context.Dev is not { Examples.Count: > 0 } dev)
                throw new ConfigException($"method '{Name}': fit_weights needs dev examples (run it with a task that has a dev split)");
            var data = new List<(int[] Prompt, int[] Continuation)>();
            foreach (var ex in dev.Sample(MaxFitExamples, context.Seed))
            {
                var cont = members[0].Tokenizer.Encode(ex.Gold);
                if (cont.Length == 0) continue;
                data.Add((encoder.EncodePrompt(ex.Messages), cont.Length > MaxFitTokens ? cont[..MaxFitTokens] : cont));
            }
            if (data.Count == 0) throw new ConfigException($"method '{Name}': fit_weights found no dev example with a non-empty gold answer");
            var sw = Stopwatch.StartNew();
            weights = await FitWeightsAsync(members, data, options.Combine, cancellationToken).ConfigureAwait(false);
            context.Log?.Invoke($"{context.Name}: fitted weights [{string.Join(", ", weights.Select(w => w.ToString("0.###")))}] on {data.Count} dev examples in {sw.Elapsed.TotalSeconds:0.0}s");
        }

        var fused = new FusedTokenModel(context.Name, members, weights, options.Combine);
        var chat = new FusedChatClient(fused, encoder, options, models, context.Seed);
        return new ConsortModel(fused.Descriptor, chat, fused, models, Name, fused);
    }

    /// <summary>Most dev examples and gold tokens used for fitting (bounds time and memory).</summary>
    public const int MaxFitExamples = 64, MaxFitTokens = 64;

    /// <summary>
    /// Fits weights that minimize the fused negative log-likelihood of each continuation after its prompt.
    /// Mixture ("prob"): EM on the mixture weights (each member's token log-probs are computed once).
    /// Product of experts ("logprob"): the best point of a simplex grid (step 0.05 for two models, 0.1 for more).
    /// </summary>
    public static async Task<double[]> FitWeightsAsync(IReadOnlyList<ITokenModel> members, IReadOnlyList<(int[] Prompt, int[] Continuation)> data,
        FusionCombine combine, CancellationToken cancellationToken = default)
    {
        int n = members.Count;
        if (combine == FusionCombine.Prob)
        {
            // lp[i][token] over all tokens of all examples.
            var lp = new List<float>[n];
            for (int i = 0; i < n; i++) lp[i] = [];
            foreach (var (prompt, cont) in data)
                for (int i = 0; i < n; i++)
                    lp[i].AddRange(await members[i].ScoreAsync(prompt, cont, cancellationToken).ConfigureAwait(false));
            int T = lp[0].Count;
            var w = Enumerable.Repeat(1.0 / n, n).ToArray();
            var r = new double[n];
            for (int iter = 0; iter < 200; iter++)
            {
                var next = new double[n];
                for (int t = 0; t < T; t++)
                {
                    double max = double.NegativeInfinity;
                    for (int i = 0; i < n; i++) max = Math.Max(max, lp[i][t]);
                    double z = 0;
                    for (int i = 0; i < n; i++) z += r[i] = w[i] * Math.Exp(lp[i][t] - max);
                    if (z <= 0) continue;
                    for (int i = 0; i < n; i++) next[i] += r[i] / z;
                }
                double sum = next.Sum();
                if (sum <= 0) break;
                double change = 0;
                for (int i = 0; i < n; i++) { next[i] /= sum; change = Math.Max(change, Math.Abs(next[i] - w[i])); }
                w = next;
                if (change < 1e-6) break;
            }
            return w;
        }

        // Product of experts: full distributions at every position, then a grid search.
        var positions = new List<(float[][] MemberLogProbs, int Target)>();
        foreach (var (prompt, cont) in data)
        {
            var seqs = new ITokenSequence[n];
            try
            {
                for (int i = 0; i < n; i++) seqs[i] = await members[i].StartAsync(prompt, cancellationToken).ConfigureAwait(false);
                for (int t = 0; t < cont.Length; t++)
                {
                    positions.Add((seqs.Select(s => s.Next.LogProbabilities()).ToArray(), cont[t]));
                    if (t + 1 < cont.Length)
                        for (int i = 0; i < n; i++) await seqs[i].AppendAsync([cont[t]], cancellationToken).ConfigureAwait(false);
                }
            }
            finally
            {
                foreach (var s in seqs) s?.Dispose();
            }
        }
        double step = n == 2 ? 0.05 : 0.1;
        double[]? best = null;
        double bestLoss = double.PositiveInfinity;
        foreach (var w in SimplexGrid(n, (int)Math.Round(1 / step)))
        {
            double loss = 0;
            foreach (var (mlp, target) in positions)
            {
                var logits = FusedTokenModel.CombineLogProbs(mlp, w, FusionCombine.LogProb);
                var norm = new float[logits.Length];
                TokenMath.LogSoftmax(logits, norm);
                loss -= norm[target];
            }
            if (loss < bestLoss) { bestLoss = loss; best = w; }
        }
        return best!;
    }

    private static IEnumerable<double[]> SimplexGrid(int n, int parts)
    {
        var cur = new int[n];
        IEnumerable<double[]> Rec(int i, int left)
        {
            if (i == n - 1)
            {
                cur[i] = left;
                yield return cur.Select(c => (double)c / parts).ToArray();
                yield break;
            }
            for (int k = 0; k <= left; k++)
            {
                cur[i] = k;
                foreach (var w in Rec(i + 1, left - k)) yield return w;
            }
        }
        return Rec(0, parts);
    }
}
