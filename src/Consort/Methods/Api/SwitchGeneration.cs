using Consort.Decoding;
using Consort.Methods.Api.Routing;
using Microsoft.Extensions.AI;

namespace Consort.Methods.Api;

/// <summary>Options of <see cref="SwitchGenerationMethod"/> (MoCo's names and defaults).</summary>
public sealed class SwitchGenerationOptions : MethodOptions
{
    /// <summary>Tokens per patch.</summary>
    [Option("Tokens each patch holds (the writer's own tokens).", Min = 1, Max = Limits.MaxGeneratedTokens)]
    public int PatchSize { get; set; } = 25;

    /// <summary>The member that picks each patch's writer.</summary>
    [Option("Member that picks each patch's writer, prompted with the question and the patches so far (MoCo's prompt); unset: a selector trained on dev rollouts " +
            "(or random_selection).", DefaultText = "trained on dev")]
    public string? SelectorModelName { get; set; }

    /// <summary>Pick writers at random.</summary>
    [Option("Pick each patch's writer uniformly at random (seeded), MoCo's rollout policy.")]
    public bool RandomSelection { get; set; }

    /// <summary>Dev examples the trained selector rolls out on.</summary>
    [Option("Dev examples the trained selector rolls out on (all when fewer).", Min = 1, Max = 1_000_000)]
    public int TrainingInstanceNum { get; set; } = 500;

    /// <summary>Random rollouts per dev example.</summary>
    [Option("Random rollouts per dev example for the trained selector.", Min = 1, Max = Limits.MaxRepeats)]
    public int RolloutPerInstance { get; set; } = 16;

    /// <summary>MoCo's objective flag.</summary>
    [Option("Write \" The final answer is\" before the last patch (MoCo's objective_flag).")]
    public bool ObjectiveFlag { get; set; }

    /// <summary>MoCo's selector base model.</summary>
    [Option("MoCo's base model of its fine-tuned selector: accepted, no effect (Consort's trained selector learns from dev rollouts directly).", Ignored = true, DefaultText = "-")]
    public string? SelectorBaseModel { get; set; }

    /// <summary>MoCo's reward model.</summary>
    [Option("MoCo's reward model for rollouts: accepted, no effect (rollouts are scored by the task).", Ignored = true, DefaultText = "-")]
    public string? RewardModelName { get; set; }

    /// <summary>MoCo's reward-model GPU.</summary>
    [Option("MoCo's reward-model GPU: accepted, no effect.", Ignored = true, DefaultText = "-")]
    public int? RewardModelGpuId { get; set; }

    /// <summary>MoCo's wait flag.</summary>
    [Option("MoCo's \" Wait,\" continuation flag: accepted, no effect.", Ignored = true, DefaultText = "-")]
    public bool? WaitFlag { get; set; }
}

/// <summary>
/// <c>switch_generation</c> (MoCo's <c>api_switch_generation</c>): the members take turns by patches of
/// <c>patch_size</c> tokens; before each patch a selector picks which member writes it: a member prompted with the
/// question and the patches so far (MoCo's prompt, answer read as a number from 0), seeded random choice, or a selector
/// trained on dev rollouts (random writers per patch; for each patch position, the member whose patches there led to
/// the best mean task score). Members keep their KV caches and read the others' patches as text, so their tokenizers
/// may differ.
/// </summary>
[CollaborationMethod("switch_generation", CollaborationLevel.Api,
    "Members take turns by patches of tokens; a selector (a member, random, or trained on dev rollouts) picks each patch's writer.",
    Aliases = ["api_switch_generation"], Reference = "Switch generation (Feng et al., 2025), https://github.com/BunsenFeng/model_collaboration",
    Requires = ModelAccess.Text | ModelAccess.Tokens, MinModels = 2)]
public sealed class SwitchGenerationMethod : CollaborationMethod<SwitchGenerationOptions>
{
    /// <inheritdoc />
    protected override void Validate(SwitchGenerationOptions options, MethodPlan plan)
    {
        if (options.SelectorModelName is { } s)
        {
            if (plan.Members.All(m => m.Name != s))
                throw plan.Error("selector_model_name", $"names '{Limits.ForMessage(s)}', which is not a member; members: {string.Join(", ", plan.Members.Select(m => m.Name))}");
            if (options.RandomSelection) throw plan.Error("random_selection", "and 'selector_model_name' both choose the writers: give one");
        }
        else if (!options.RandomSelection && !plan.HasDev)
            throw plan.Error("needs 'selector_model_name', 'random_selection': true, or a task with a dev split to train the selector on");
    }

    /// <summary>MoCo's selector prompt: the question, each patch tagged with its writer's index, and the question of who writes next.</summary>
    public static string SelectorPrompt(string question, IReadOnlyList<(int Writer, string Text)> patches, int members) =>
        question + string.Concat(patches.Select(p => $" <model {p.Writer} begins> {p.Text} <model {p.Writer} ends>")) +
        $" Which model should generate the next segment? Please respond with a number from 0 to {members - 1}. The answer is model ";

    /// <inheritdoc />
    protected override async Task<ConsortModel> CreateAsync(MethodContext context, SwitchGenerationOptions options, CancellationToken cancellationToken)
    {
        var models = context.Models;
        int[]? table = null;
        if (options.SelectorModelName is null && !options.RandomSelection)
        {
            var dev = context.Dev ?? throw new ConfigException($"method '{Name}' needs a dev split to train the selector on");
            table = await TrainAsync(context, options, dev.Sample(options.TrainingInstanceNum, context.Seed), cancellationToken).ConfigureAwait(false);
        }
        int selector = options.SelectorModelName is { } s ? models.Select((m, i) => (m, i)).First(x => x.m.Name == s).i : -1;
        var descriptor = DescriptorOf(context, options);
        return new ConsortModel(descriptor, new Client(descriptor, models, options, selector, table, context.Seed), null, models, Name);
    }

    // Rollouts with random writers; each patch position's credit goes to the member that wrote it.
    private async Task<int[]> TrainAsync(MethodContext context, SwitchGenerationOptions options, IReadOnlyList<FitExample> examples, CancellationToken ct)
    {
        var models = context.Models;
        var client = new Client(context.Descriptor, models, options, -1, null, context.Seed);
        var jobs = examples.SelectMany((ex, i) => Enumerable.Range(0, options.RolloutPerInstance).Select(k => (ex, Seed: context.Seed + 7919 * i + k))).ToList();
        var rollouts = await CollaborationChatClient.ParallelAsync(jobs, context.MaxConcurrency, async (job, _, c) =>
        {
            var random = new Random(job.Seed);
            var (text, writers) = await client.DecodeAsync(job.ex.Messages, job.ex.Options, new CallTrace(), (_, _, _) => Task.FromResult(random.Next(models.Count)), c).ConfigureAwait(false);
            return (Score: job.ex.Score(text), Writers: writers);
        }, ct).ConfigureAwait(false);
        int rounds = rollouts.Max(r => r.Writers.Count);
        var table = new int[Math.Max(1, rounds)];
        var overall = Enumerable.Range(0, models.Count).Select(m => Mean(rollouts.Where(r => r.Writers.Contains(m)).Select(r => r.Score))).ToArray();
        for (int round = 0; round < table.Length; round++)
        {
            var means = Enumerable.Range(0, models.Count).Select(m => Mean(rollouts.Where(r => r.Writers.Count > round && r.Writers[round] == m).Select(r => r.Score))).ToArray();
            // A position no rollout reached (or a tie) goes to the member best over all rollouts.
            table[round] = Enumerable.Range(0, models.Count).OrderByDescending(m => double.IsNaN(means[m]) ? double.NegativeInfinity : means[m])
                .ThenByDescending(m => overall[m]).First();
        }
        context.Log?.Invoke($"switch_generation: selector trained on {rollouts.Length} rollouts of {examples.Count} dev examples " +
                            $"(mean score {rollouts.Average(r => r.Score):F3}); writers by patch: {string.Join(", ", table.Select(t => models[t].Name))}");
        return table;
    }

    private static double Mean(IEnumerable<double> values)
    {
        var list = values.ToList();
        return list.Count == 0 ? double.NaN : list.Average();
    }

    private sealed class Client(ModelDescriptor descriptor, IReadOnlyList<ConsortModel> models, SwitchGenerationOptions settings, int selector, int[]? table, int seed)
        : CollaborationChatClient(descriptor)
    {
        /// <summary>Decodes one answer, patch by patch; <paramref name="choose"/> names each patch's writer (round, patches so far, trace).</summary>
        public async Task<(string Text, List<int> Writers)> DecodeAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace,
            Func<int, IReadOnlyList<(int Writer, string Text)>, CallTrace, Task<int>> choose, CancellationToken ct, bool finish = false, List<ChatResponse>? result = null)
        {
            var decode = DecodeSettings.From(settings.Apply(options), seed);
            var sampler = decode.CreateSampler();
            using var weave = await TextWeave.StartAsync(models, messages, decode, "switch_generation", ct).ConfigureAwait(false);
            int rounds = Math.Max(1, decode.MaxTokens / settings.PatchSize);
            var patches = new List<(int Writer, string Text)>();
            var writers = new List<int>();
            bool ended = false;
            for (int round = 0; round < rounds && !weave.Stopped && !weave.Full; round++)
            {
                int writer = await choose(round, patches, trace).ConfigureAwait(false);
                if (settings.ObjectiveFlag && round == rounds - 1 && rounds > 1) weave.Insert(" The final answer is", null, 0);
                var draft = await weave.Tracks[writer].DraftAsync(settings.PatchSize, sampler, null, ct).ConfigureAwait(false);
                writers.Add(writer);
                if (draft.Text.Length > 0)
                {
                    weave.Insert(draft.Text, writer, draft.Tokens.Count);
                    patches.Add((writer, draft.Text));
                }
                if (draft.Ended) { ended = true; break; }
            }
            if (finish)
                result!.Add(weave.Finish(trace, models.Select(m => "patches").ToArray(), messages, new()
                {
                    ["writers"] = writers.Select(w => models[w].Name).ToList(), ["patch_size"] = settings.PatchSize,
                }, ended));
            return (weave.Text, writers);
        }

        private async Task<int> SelectAsync(int round, IReadOnlyList<(int Writer, string Text)> patches, IReadOnlyList<ChatMessage> messages, ChatOptions? options,
            CallTrace trace, Random random, CancellationToken ct)
        {
            if (table is not null) return table[Math.Min(round, table.Length - 1)];
            if (selector < 0) return random.Next(models.Count);
            var prompt = SelectorPrompt(LastUserText(messages) ?? "", patches, models.Count);
            var o = settings.Apply(options);
            o.StopSequences = null; // the task's stop strings are for answers
            o.MaxOutputTokens = 8;
            int? chosen = null;
            await CallAsync(models[selector], [new ChatMessage(ChatRole.User, prompt)], o, trace, $"select (patch {round + 1})", ct, r =>
            {
                chosen = ChoiceParser.Parse(r.Text, models.Select(m => m.Name).ToArray(), firstNumber: 0);
                return new() { ["chosen"] = chosen is { } c ? models[c].Name : null, ["fallback"] = chosen is null ? "random" : null };
            }).ConfigureAwait(false);
            return chosen ?? random.Next(models.Count); // MoCo's fallback: a random writer
        }

        private static int StableHash(string text)
        {
            uint h = 2166136261;
            foreach (char c in text) h = (h ^ c) * 16777619;
            return (int)h;
        }

        protected override async Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct)
        {
            // Seeded by the question, so an answer does not depend on the order of concurrent requests.
            var random = new Random(seed ^ StableHash(string.Join("\n", messages.Select(m => m.Text))));
            var result = new List<ChatResponse>(1);
            await DecodeAsync(messages, options, trace, (round, patches, t) => SelectAsync(round, patches, messages, options, t, random, ct), ct, finish: true, result).ConfigureAwait(false);
            return result[0];
        }
    }
}
