using System.Text.Json.Nodes;
using Consort.Decoding;
using Microsoft.Extensions.AI;

namespace Consort.Methods.Api;

/// <summary>Options of <see cref="MentorCollabMethod"/> (MoCo's names and defaults).</summary>
public sealed class MentorCollabOptions : MethodOptions
{
    /// <summary>Percent of words at which the mentor is consulted.</summary>
    [Option("Percent of words at which the mentor is consulted (MoCo's README: 25; its code compared a 0-100 draw with 0.25, so it never consulted the mentor).",
        Min = 0, Max = 100)]
    public double DecisionProportion { get; set; } = 25;

    /// <summary>Tokens per patch at a divergence point.</summary>
    [Option("Tokens each side writes at a divergence point.", Min = 1, Max = Limits.MaxGeneratedTokens)]
    public int PatchSize { get; set; } = 16;

    /// <summary>Who picks the patch.</summary>
    [Option("free: the generator judges which patch to keep (Option A: its own, B: the mentor's); train: a logistic regression on the " +
            "generator's hidden-state embedding at the divergence point, trained on dev (label: the mentor's patch gave a better-scored answer), decides.",
        Allowed = ["free", "train"])]
    public string Mode { get; set; } = "free";

    /// <summary>Embeddings the classifier reads (mode train).</summary>
    [Option("Mode train: the embedding of the text so far that the classifier reads (a GGUF model, \"minilm\" or an endpoint).",
        DefaultText = "the generator's own hidden states (llama.cpp, mean-pooled)")]
    public JsonNode? Embedding { get; set; }

    /// <summary>Dev examples the classifier is trained on.</summary>
    [Option("Mode train: dev examples decoded to label divergence points (each costs 1 + up to 4 decodes).", Min = 1, Max = 100_000)]
    public int TrainingNum { get; set; } = 32;

    /// <summary>MoCo's task kind.</summary>
    [Option("MoCo's task kind (General or Math): accepted, no effect.", Ignored = true, DefaultText = "-")]
    public string? Task { get; set; }

    /// <summary>MoCo's classifier threshold.</summary>
    [Option("Mode train: the generator's patch is kept when the classifier's probability that it is the better one exceeds this (MoCo's mlp_threshold).",
        Min = 0, Max = 1)]
    public double MlpThreshold { get; set; } = 0.5;
}

/// <summary>
/// <c>mentor_collab</c> (MoCo's <c>api_mentor_collab</c>): the generator (first member) writes word by word; at
/// <c>decision_proportion</c> percent of the words the mentor (second member) proposes its next word too, and where
/// the two differ each writes a <c>patch_size</c> patch and the generator judges which to keep (MoCo's prompt: "Option
/// (A): ..., Option (B): ... My choice: Option (", read as the generator's probability of A against B on a fork of its
/// sequence). Both keep their KV caches and read the kept text; their tokenizers may differ. In mode <c>train</c> a
/// logistic regression decides instead (MoCo ships pretrained MLPs for six generators; here any generator is trained
/// on the run's dev split): its features are the generator's hidden-state embedding of the text so far at the
/// divergence point, its label whether keeping the mentor's patch there (and the generator's elsewhere) gave a
/// better-scored dev answer than keeping the generator's everywhere.
/// </summary>
[CollaborationMethod("mentor_collab", CollaborationLevel.Api,
    "The generator writes word by word; where the mentor's next word differs, both write a patch and the generator picks one.",
    Aliases = ["api_mentor_collab"], Reference = "MoCo api_mentor_collab (Feng et al., 2025), https://github.com/BunsenFeng/model_collaboration",
    Requires = ModelAccess.Text | ModelAccess.Tokens, MinModels = 2, MaxModels = 2)]
public sealed class MentorCollabMethod : CollaborationMethod<MentorCollabOptions>
{
    /// <summary>The judge's question after the answer so far (MoCo's wording).</summary>
    public static string JudgePrompt(string generatorPatch, string mentorPatch) =>
        $"\nNow I will choose the next sequence that could lead to the correct answer. Option (A): {generatorPatch}, Option (B): {mentorPatch}. My choice: Option (";

    // Divergence points of one dev example that get a label (each costs one more decode).
    private const int LabelsPerExample = 4;

    /// <inheritdoc />
    protected override void Validate(MentorCollabOptions options, MethodPlan plan)
    {
        if (options.Mode != "train") return;
        if (!plan.HasDev) throw plan.Error("mode", "= train needs a task with a dev split to train the classifier on; or use mode \"free\"");
        if (options.Embedding is null && plan.Members[0].WeightsPath is null)
            throw plan.Error("embedding", $"mode train reads the generator's hidden states, and generator '{plan.Members[0].Name}' has no local weights (a GGUF); name an 'embedding' model");
        EmbeddingSpec.Check(options.Embedding, plan, "embedding");
    }

    /// <inheritdoc />
    protected override async Task<ConsortModel> CreateAsync(MethodContext context, MentorCollabOptions options, CancellationToken cancellationToken)
    {
        var descriptor = DescriptorOf(context, options);
        var (generator, mentor) = (context.Models[0], context.Models[1]);
        if (options.Mode != "train")
            return new ConsortModel(descriptor, new Client(descriptor, generator, mentor, options, context.Seed, Client.Judge), null, context.Models, Name);

        var spec = options.Embedding ?? JsonValue.Create(generator.Descriptor.WeightsPath!);
        var (embedder, identity) = await EmbeddingSpec.Sources(context, Name).CreateAsync(spec, context.BaseDirectory ?? Environment.CurrentDirectory, cancellationToken).ConfigureAwait(false);
        try
        {
            var features = new DivergenceFeatures(embedder, generator.Descriptor.ContextSize);
            var dev = context.Dev ?? throw new ConfigException($"method '{Name}': mode train needs a dev split");
            var classifier = await TrainAsync(context, options, features, dev.Sample(options.TrainingNum, context.Seed), cancellationToken).ConfigureAwait(false);
            var decide = classifier is null ? (Client.Decide)Client.KeepGenerator("no divergence on dev was labelled") : Client.Classify(classifier, features, options.MlpThreshold);
            return new ConsortModel(descriptor, new Client(descriptor, generator, mentor, options, context.Seed, decide), null, context.Models, Name, embedder);
        }
        catch
        {
            embedder.Dispose();
            throw;
        }
    }

    // For each dev example: decode keeping the generator's patches everywhere (recording each divergence's features),
    // then once per divergence keeping the mentor's patch there only; label = that answer scored higher.
    private async Task<LogisticRegression?> TrainAsync(MethodContext context, MentorCollabOptions options, DivergenceFeatures features,
        IReadOnlyList<FitExample> examples, CancellationToken ct)
    {
        var (generator, mentor) = (context.Models[0], context.Models[1]);
        var descriptor = context.Descriptor;
        var rows = await CollaborationChatClient.ParallelAsync(examples, context.MaxConcurrency, async (ex, _, c) =>
        {
            var o = options.Apply(ex.Options);
            var seen = new List<double[]>();
            var baseline = new Client(descriptor, generator, mentor, options, context.Seed, async (d, _, t) =>
            {
                if (d.Index < LabelsPerExample) seen.Add(await features.OfAsync(d, t).ConfigureAwait(false));
                return (false, null);
            });
            double baseScore = ex.Score((await baseline.GetResponseAsync(ex.Messages, o, c).ConfigureAwait(false)).Text);
            var result = new List<(double[] X, bool Y)>();
            for (int j = 0; j < seen.Count; j++)
            {
                int at = j;
                var forced = new Client(descriptor, generator, mentor, options, context.Seed, (d, _, _) => Task.FromResult((d.Index == at, (Dictionary<string, object?>?)null)));
                double score = ex.Score((await forced.GetResponseAsync(ex.Messages, o, c).ConfigureAwait(false)).Text);
                result.Add((seen[j], score > baseScore));
            }
            return result;
        }, ct).ConfigureAwait(false);
        var all = rows.SelectMany(r => r).ToList();
        if (all.Count == 0)
        {
            context.Log?.Invoke($"mentor_collab: no divergence point on {examples.Count} dev examples; the generator's patches are kept");
            return null;
        }
        var lr = LogisticRegression.Fit(all.Select(r => r.X).ToList(), all.Select(r => r.Y).ToList());
        context.Log?.Invoke($"mentor_collab: classifier trained on {all.Count} divergence points of {examples.Count} dev examples " +
                            $"({all.Count(r => r.Y)} where the mentor's patch scored better), training accuracy {lr.TrainingAccuracy:P0}");
        return lr;
    }

    /// <summary>A divergence point: its number in the answer, the conversation, the answer so far and the two patches.</summary>
    internal sealed record Divergence(int Index, IReadOnlyList<ChatMessage> Messages, string Prefix, string GeneratorPatch, string MentorPatch);

    // The classifier's features: the embedding of the conversation and the answer so far (its tail, so it fits the embedder).
    private sealed class DivergenceFeatures(IEmbeddingGenerator<string, Embedding<float>> embedder, int contextSize)
    {
        private readonly int _chars = Math.Max(16, (contextSize > 0 ? Math.Min(contextSize, 4096) : 1024) / 2);

        public async Task<double[]> OfAsync(Divergence d, CancellationToken ct)
        {
            var text = string.Join("\n", d.Messages.Select(m => m.Text)) + d.Prefix;
            if (text.Length > _chars) text = text[^_chars..];
            var e = await embedder.GenerateAsync([text], cancellationToken: ct).ConfigureAwait(false);
            return Array.ConvertAll(e[0].Vector.ToArray(), v => (double)v);
        }
    }

    private sealed class Client(ModelDescriptor descriptor, ConsortModel generator, ConsortModel mentor, MentorCollabOptions settings, int seed, Client.Decide decide)
        : CollaborationChatClient(descriptor)
    {
        /// <summary>Whether the mentor's patch is kept at a divergence, and what the trace records about the choice.</summary>
        public delegate Task<(bool Mentor, Dictionary<string, object?>? Data)> Decide(Divergence divergence, TokenTrack generatorTrack, CancellationToken ct);

        // Mode free: the generator judges; a judge question longer than its free context cannot be asked: its own patch stays, and the trace says so.
        public static async Task<(bool, Dictionary<string, object?>?)> Judge(Divergence d, TokenTrack g, CancellationToken ct)
        {
            bool fits = g.Fits(JudgePrompt(d.GeneratorPatch, d.MentorPatch));
            bool mentorWins = fits && await MentorWinsAsync(g, d.GeneratorPatch, d.MentorPatch, ct).ConfigureAwait(false);
            return (mentorWins, new() { ["judged"] = fits ? null : "no: the judge's question does not fit the generator's context" });
        }

        // Mode train: MoCo's rule, the generator's patch (A) when P(A better) exceeds the threshold.
        public static Decide Classify(LogisticRegression classifier, DivergenceFeatures features, double threshold) => async (d, _, ct) =>
        {
            double mentorBetter = classifier.Probability(await features.OfAsync(d, ct).ConfigureAwait(false));
            return (!(1 - mentorBetter > threshold), new() { ["judged"] = "classifier", ["p_mentor_better"] = mentorBetter });
        };

        public static Decide KeepGenerator(string why) => (_, _, _) => Task.FromResult((false, (Dictionary<string, object?>?)new() { ["judged"] = why }));

        private static int StableHash(string text)
        {
            uint h = 2166136261;
            foreach (char c in text) h = (h ^ c) * 16777619;
            return (int)h;
        }

        // The judge's log-probability of "A" and of "B" as its next token.
        private static async Task<bool> MentorWinsAsync(TokenTrack g, string gp, string mp, CancellationToken ct)
        {
            var lp = (await g.NextAfterAsync(JudgePrompt(gp, mp), ct).ConfigureAwait(false)).LogProbabilities();
            int a = TokenTrack.ContinuationTokens(g.Tokenizer, "A")[0], b = TokenTrack.ContinuationTokens(g.Tokenizer, "B")[0];
            return lp[b] > lp[a];
        }

        protected override async Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct)
        {
            var decode = DecodeSettings.From(settings.Apply(options), seed);
            var sampler = decode.CreateSampler();
            var random = new Random(seed ^ StableHash(string.Join("\n", messages.Select(m => m.Text))));
            using var weave = await TextWeave.StartAsync([generator, mentor], messages, decode, "mentor_collab", ct).ConfigureAwait(false);
            var (g, m) = (weave.Tracks[0], weave.Tracks[1]);
            var decisions = new List<Dictionary<string, object?>>();
            bool ended = false;
            while (weave.Steps < decode.MaxTokens && !weave.Stopped && !weave.Full)
            {
                int room = decode.MaxTokens - weave.Steps;
                var word = await g.DraftAsync(room, sampler, TokenTrack.AtNextWord, ct).ConfigureAwait(false);
                if (random.NextDouble() * 100 < settings.DecisionProportion)
                {
                    var other = await m.DraftAsync(room, sampler, TokenTrack.AtNextWord, ct).ConfigureAwait(false);
                    if (other.Text != word.Text || other.Ended != word.Ended)
                    {
                        int size = Math.Min(settings.PatchSize, room);
                        var gp = await g.DraftAsync(size, sampler, null, ct).ConfigureAwait(false);
                        var mp = await m.DraftAsync(size, sampler, null, ct).ConfigureAwait(false);
                        var (mentorWins, why) = await decide(new Divergence(decisions.Count, messages, weave.Text, gp.Text, mp.Text), g, ct).ConfigureAwait(false);
                        var kept = mentorWins ? mp : gp;
                        var decision = new Dictionary<string, object?>
                        {
                            ["at_token"] = weave.Steps, ["generator"] = gp.Text, ["mentor"] = mp.Text, ["chosen"] = mentorWins ? mentor.Name : generator.Name, ["judged"] = null,
                        };
                        foreach (var (k, v) in why ?? []) decision[k] = v;
                        decisions.Add(decision);
                        if (kept.Text.Length > 0) weave.Insert(kept.Text, mentorWins ? 1 : 0, kept.Tokens.Count);
                        if (kept.Ended || kept.Tokens.Count == 0) { ended = true; break; }
                        continue;
                    }
                }
                if (word.Text.Length > 0) weave.Insert(word.Text, 0, word.Tokens.Count);
                if (word.Ended || word.Tokens.Count == 0) { ended = true; break; }
            }
            return weave.Finish(trace, ["generator", "mentor"], messages, new()
            {
                ["decisions"] = decisions, ["mentor_chosen"] = decisions.Count(d => (string?)d["chosen"] == mentor.Name), ["tokens"] = weave.Steps,
                ["strong"] = mentor.Name,
            }, ended);
        }
    }
}
