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
    [Option("free: the generator judges which patch to keep (Option A: its own, B: the mentor's).", Allowed = ["free"])]
    public string Mode { get; set; } = "free";

    /// <summary>MoCo's task kind.</summary>
    [Option("MoCo's task kind (General or Math): accepted, no effect.", Ignored = true, DefaultText = "-")]
    public string? Task { get; set; }

    /// <summary>MoCo's classifier threshold.</summary>
    [Option("MoCo's threshold of its trained classifier (mode train): accepted, no effect in mode free.", Ignored = true, DefaultText = "-")]
    public double? MlpThreshold { get; set; }
}

/// <summary>
/// <c>mentor_collab</c> (MoCo's <c>api_mentor_collab</c>): the generator (first member) writes word by word; at
/// <c>decision_proportion</c> percent of the words the mentor (second member) proposes its next word too, and where
/// the two differ each writes a <c>patch_size</c> patch and the generator judges which to keep (MoCo's prompt: "Option
/// (A): ..., Option (B): ... My choice: Option (", read as the generator's probability of A against B on a fork of its
/// sequence). Both keep their KV caches and read the kept text; their tokenizers may differ.
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

    /// <inheritdoc />
    protected override Task<ConsortModel> CreateAsync(MethodContext context, MentorCollabOptions options, CancellationToken cancellationToken)
    {
        var descriptor = DescriptorOf(context, options);
        return System.Threading.Tasks.Task.FromResult(new ConsortModel(descriptor, new Client(descriptor, context.Models[0], context.Models[1], options, context.Seed), null, context.Models, Name));
    }

    private sealed class Client(ModelDescriptor descriptor, ConsortModel generator, ConsortModel mentor, MentorCollabOptions settings, int seed)
        : CollaborationChatClient(descriptor)
    {
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
                        // A judge question longer than the generator's free context cannot be asked: its own patch stays, and the trace says so.
                        bool fits = g.Fits(JudgePrompt(gp.Text, mp.Text));
                        bool mentorWins = fits && await MentorWinsAsync(g, gp.Text, mp.Text, ct).ConfigureAwait(false);
                        var kept = mentorWins ? mp : gp;
                        decisions.Add(new()
                        {
                            ["at_token"] = weave.Steps, ["generator"] = gp.Text, ["mentor"] = mp.Text, ["chosen"] = mentorWins ? mentor.Name : generator.Name,
                            ["judged"] = fits ? null : "no: the judge's question does not fit the generator's context",
                        });
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
