using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.AI;

namespace Consort.Methods.Text;

/// <summary>How <see cref="LlmBlenderMethod"/> ranks candidates.</summary>
public enum BlenderRanking
{
    /// <summary>Every ordered pair A/B (both orders, to cancel position bias): n(n-1) ranker calls; ranked by wins.</summary>
    Pairwise,
    /// <summary>One call scores all candidates at once (MoCo's JSON scores): cheaper, one pass.</summary>
    Listwise,
}

/// <summary>Options of <see cref="LlmBlenderMethod"/>.</summary>
public sealed class LlmBlenderOptions : TeamOptions
{
    /// <summary>Candidates passed to the fuser.</summary>
    [Option("Top-ranked candidates passed to the fuser (MoCo's top_k; here it is not top-k sampling).", Min = 1, Max = Limits.MaxRepeats)]
    public new int TopK { get; set; } = 3;

    /// <summary>Ranking mode.</summary>
    [Option("pairwise (both orders, n(n-1) calls) or listwise (one call scores every candidate).")]
    public BlenderRanking Ranking { get; set; } = BlenderRanking.Pairwise;

    /// <summary>The ranker (a member name).</summary>
    [Option("Member that ranks the candidates (MoCo's ranker_model_name).", Aliases = ["ranker"], DefaultText = "first member")]
    public string? RankerModelName { get; set; }

    /// <summary>The fuser (a member name).</summary>
    [Option("Member that fuses the top candidates into the answer (MoCo's fuser_model_name).", Aliases = ["fuser"], DefaultText = "first member")]
    public string? FuserModelName { get; set; }

    /// <summary>Most tokens of a ranking call.</summary>
    [Option("Most tokens a ranking call generates.", Min = 1, Max = Limits.MaxGeneratedTokens)]
    public int RankerMaxResponseLength { get; set; } = 128;

    /// <summary>Most tokens of the fused answer.</summary>
    [Option("Most tokens of the fused answer.", Min = 1, Max = Limits.MaxGeneratedTokens, DefaultText = "max_tokens")]
    public int? FuserMaxResponseLength { get; set; }

    /// <summary>MoCo's dev fine-tuning of the ranker (not available).</summary>
    [Option("MoCo fine-tunes the ranker on dev preferences: not supported in Consort (must be false).")]
    public bool TrainRankerOnDev { get; set; }

    /// <summary>MoCo's dev fine-tuning of the fuser (not available).</summary>
    [Option("MoCo fine-tunes the fuser on dev answers: not supported in Consort (must be false).")]
    public bool TrainFuserOnDev { get; set; }

    /// <summary>MoCo's GPU placement of the ranker.</summary>
    [Option("MoCo's GPU for the ranker: accepted, no effect.", Ignored = true, DefaultText = "-")]
    public int? RankerGpuId { get; set; }

    /// <summary>MoCo's GPU placement of the fuser.</summary>
    [Option("MoCo's GPU for the fuser: accepted, no effect.", Ignored = true, DefaultText = "-")]
    public int? FuserGpuId { get; set; }

    /// <summary>MoCo's ranker SFT batch size.</summary>
    [Option("MoCo's ranker SFT setting: accepted, no effect (training is not supported).", Ignored = true, DefaultText = "-")] public double? RankerSftBatchSize { get; set; }
    /// <summary>MoCo's ranker SFT accumulation.</summary>
    [Option("MoCo's ranker SFT setting: accepted, no effect.", Ignored = true, DefaultText = "-")] public double? RankerSftGradientAccumulationSteps { get; set; }
    /// <summary>MoCo's ranker SFT learning rate.</summary>
    [Option("MoCo's ranker SFT setting: accepted, no effect.", Ignored = true, DefaultText = "-")] public double? RankerSftLearningRate { get; set; }
    /// <summary>MoCo's ranker SFT epochs.</summary>
    [Option("MoCo's ranker SFT setting: accepted, no effect.", Ignored = true, DefaultText = "-")] public double? RankerSftEpoch { get; set; }
    /// <summary>MoCo's fuser SFT batch size.</summary>
    [Option("MoCo's fuser SFT setting: accepted, no effect.", Ignored = true, DefaultText = "-")] public double? FuserSftBatchSize { get; set; }
    /// <summary>MoCo's fuser SFT accumulation.</summary>
    [Option("MoCo's fuser SFT setting: accepted, no effect.", Ignored = true, DefaultText = "-")] public double? FuserSftGradientAccumulationSteps { get; set; }
    /// <summary>MoCo's fuser SFT learning rate.</summary>
    [Option("MoCo's fuser SFT setting: accepted, no effect.", Ignored = true, DefaultText = "-")] public double? FuserSftLearningRate { get; set; }
    /// <summary>MoCo's fuser SFT epochs.</summary>
    [Option("MoCo's fuser SFT setting: accepted, no effect.", Ignored = true, DefaultText = "-")] public double? FuserSftEpoch { get; set; }
}

/// <summary>
/// <c>llm_blender</c>: every member answers; the ranker compares the candidates pairwise, A/B in both orders (so position
/// bias cancels), and ranks them by wins (or scores them all in one listwise call); the <c>top_k</c> best go to the fuser,
/// which writes the final answer. Candidates that say the member does not know are ranked last.
/// </summary>
[CollaborationMethod("llm_blender", CollaborationLevel.Text, "Members answer; a ranker compares candidates pairwise (both orders) or listwise; a fuser merges the top k.",
    Aliases = ["text_llm_blender", "blender"], MinModels = 2,
    Reference = "LLM-Blender (Jiang et al., 2023), https://arxiv.org/abs/2306.02561")]
public sealed partial class LlmBlenderMethod : CollaborationMethod<LlmBlenderOptions>
{
    /// <summary>Default role prompts (MoCo's wording).</summary>
    public static readonly RolePrompts Prompts = new(new Dictionary<string, RolePrompts.Role>
    {
        ["answer"] = new("{question}", "question"),
        ["rank_pair"] = new("You are a judge comparing two answers to a user's question.\n\nQuestion:\n{question}\n\nCandidate A:\n{candidate_a}\n\nCandidate B:\n{candidate_b}\n\n"
            + "Which answer is better, A or B? Reply with a single character: \"A\" or \"B\".", "question", "candidate_a", "candidate_b"),
        ["rank_list"] = new("You are an expert judge for assessing the quality of answers to a user's question. Rate each answer on a scale from 1 to 10, "
            + "where 10 is an excellent, fully correct answer and 1 is a very poor answer.\n\nQuestion: {question}\n\nCandidate answers:\n{candidates}\n\n"
            + "Now provide your judgment as a JSON object exactly in the following format (and nothing else):\n{{\"scores\": [s1, s2, ..., sN]}}\n"
            + "Replace s1, s2, ..., sN with numeric scores for Answer 1, Answer 2, etc.", "question", "candidates", "candidates_inline", "count"),
        ["fuse"] = new("You are an AI assistant that combines multiple candidate answers into a single, high-quality answer. Use the good parts of each candidate answer, "
            + "ignore mistakes, and produce a final answer that is as accurate, helpful, and concise as possible.\n\nQuestion: {question}\n\n"
            + "Candidate answers (from best to worse according to a judge model):\n{candidates}\n\nNow write the final answer to the question based on these candidates. {format}\nFinal answer:",
            "question", "candidates", "candidates_inline"),
    });

    /// <inheritdoc />
    protected override void Validate(LlmBlenderOptions options, MethodPlan plan)
    {
        options.Check(Prompts, plan, plan.Members.Count);
        if (options.TopK > plan.Members.Count) throw plan.Error("top_k", $"= {options.TopK} is more than the {plan.Members.Count} candidates (one per member)");
        DevSelection.Member(plan, "ranker_model_name", options.RankerModelName);
        DevSelection.Member(plan, "fuser_model_name", options.FuserModelName);
        if (options.TrainRankerOnDev || options.TrainFuserOnDev)
            throw plan.Error(options.TrainRankerOnDev ? "train_ranker_on_dev" : "train_fuser_on_dev",
                "= true is not supported: MoCo fine-tunes the ranker/fuser with supervised training on GPU; Consort uses them as they are (set it to false)");
    }

    /// <inheritdoc />
    protected override Task<ConsortModel> CreateAsync(MethodContext context, LlmBlenderOptions options, CancellationToken ct)
    {
        int ranker = options.RankerModelName is { } r ? DevSelection.IndexOf(context, r) : 0;
        int fuser = options.FuserModelName is { } f ? DevSelection.IndexOf(context, f) : 0;
        var descriptor = DescriptorOf(context, options);
        return Task.FromResult(new ConsortModel(descriptor, new Client(descriptor, context, options, ranker, fuser), null, context.Models, Name));
    }

    /// <summary>What a pairwise ranking reply prefers: 1 = A, -1 = B, 0 = no preference.</summary>
    /// <param name="reply">The ranker's text.</param>
    /// <param name="answerOfReply">Its normalized answer.</param>
    /// <param name="a">Candidate A's normalized answer.</param>
    /// <param name="b">Candidate B's normalized answer.</param>
    public static int Preference(string reply, string answerOfReply, string a, string b)
    {
        // A label ("A", "B", "Answer B", "[[A]]") first; a ranker may instead repeat the better answer.
        var label = Label().Match(reply);
        if (label.Success) return label.Groups[1].Value.Equals("A", StringComparison.OrdinalIgnoreCase) ? 1 : -1;
        if (a != b && answerOfReply.Length > 0)
        {
            if (answerOfReply == a) return 1;
            if (answerOfReply == b) return -1;
        }
        return 0;
    }

    /// <summary>Scores of a listwise ranking reply: MoCo's JSON <c>{"scores": [...]}</c>, else the numbers in it, else the
    /// candidate whose answer it repeats gets 1 and the others 0; missing scores are 0.</summary>
    public static double[] ListScores(string reply, string answerOfReply, IReadOnlyList<string> answers)
    {
        var scores = new double[answers.Count];
        int open = reply.IndexOf('{'), close = reply.LastIndexOf('}');
        if (open >= 0 && close > open)
        {
            try
            {
                using var doc = JsonDocument.Parse(reply[open..(close + 1)]);
                foreach (var p in doc.RootElement.EnumerateObject())
                    if (p.Name.Equals("scores", StringComparison.OrdinalIgnoreCase) || p.Name.Equals("score", StringComparison.OrdinalIgnoreCase))
                    {
                        int i = 0;
                        foreach (var v in p.Value.EnumerateArray())
                        {
                            if (i >= scores.Length) break;
                            scores[i++] = v.ValueKind == JsonValueKind.Number ? v.GetDouble() : 0;
                        }
                        return scores;
                    }
            }
            catch (JsonException) { }
        }
        int hit = answerOfReply.Length == 0 ? -1 : answers.ToList().IndexOf(answerOfReply);
        if (hit >= 0) { scores[hit] = 1; return scores; }
        var numbers = Number().Matches(reply).Take(scores.Length).ToList();
        for (int i = 0; i < numbers.Count; i++) scores[i] = double.Parse(numbers[i].Value, CultureInfo.InvariantCulture);
        return scores;
    }

    [GeneratedRegex(@"(?<![A-Za-z])([AB])(?![A-Za-z])")]
    private static partial Regex Label();

    [GeneratedRegex(@"-?\d+(?:\.\d+)?")]
    private static partial Regex Number();

    private sealed class Client(ModelDescriptor descriptor, MethodContext context, LlmBlenderOptions settings, int ranker, int fuser) : CollaborationChatClient(descriptor)
    {
        protected override async Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct)
        {
            var run = new TeamRun(context.Models, settings, messages, options, trace, context.MaxConcurrency, context.Answers);
            var candidates = (await run.RoundAsync(context.Models.Select((_, i) => new TeamAsk(i, "answer", 0, run.Render("answer"))).ToList(), ct).ConfigureAwait(false))
                .Where(c => c is not null).Select(c => c!).ToList();
            if (candidates.Count == 0) throw new ConsortException($"answer: the budget was spent ({run.Budget.Reached}) before any candidate");
            var wins = new double[candidates.Count];
            var rankOptions = run.OptionsFor();
            rankOptions.MaxOutputTokens = settings.RankerMaxResponseLength;
            // Abstentions sort last by construction; the ranker compares what the members said.
            var said = Enumerable.Range(0, candidates.Count).Where(i => !candidates[i].Abstained).ToList();
            if (said.Count > 1 && settings.Ranking == BlenderRanking.Pairwise)
            {
                var pairs = said.SelectMany(i => said.Where(j => j != i).Select(j => (A: i, B: j))).ToList();
                var asks = pairs.Select(p => new TeamAsk(ranker, "rank_pair", 1, run.Render("rank_pair",
                    ("candidate_a", TeamRun.OneLine(candidates[p.A].Text)), ("candidate_b", TeamRun.OneLine(candidates[p.B].Text))))
                {
                    Options = rankOptions, Data = new() { ["a"] = candidates[p.A].Member, ["b"] = candidates[p.B].Member },
                }).ToList();
                var judged = await run.RoundAsync(asks, ct).ConfigureAwait(false);
                for (int k = 0; k < pairs.Count; k++)
                {
                    if (judged[k] is not { } j) continue;
                    int pref = Preference(j.Text, j.Answer, candidates[pairs[k].A].Answer, candidates[pairs[k].B].Answer);
                    if (pref > 0) wins[pairs[k].A] += 1;
                    else if (pref < 0) wins[pairs[k].B] += 1;
                    else { wins[pairs[k].A] += 0.5; wins[pairs[k].B] += 0.5; }
                }
            }
            else if (said.Count > 1)
            {
                var texts = said.Select(i => TeamRun.OneLine(candidates[i].Text)).ToList();
                var j = await run.RoundAsync([new TeamAsk(ranker, "rank_list", 1, run.Render("rank_list", ("candidates", TeamRun.Numbered(texts)),
                    ("candidates_inline", string.Join(" | ", texts)), ("count", texts.Count.ToString(CultureInfo.InvariantCulture)))) { Options = rankOptions }], ct).ConfigureAwait(false);
                if (j[0] is { } reply)
                {
                    var s = ListScores(reply.Text, reply.Answer, said.Select(i => candidates[i].Answer).ToList());
                    for (int k = 0; k < said.Count; k++) wins[said[k]] = s[k];
                }
            }
            var order = Enumerable.Range(0, candidates.Count)
                .OrderBy(i => candidates[i].Abstained).ThenByDescending(i => wins[i]).ThenBy(i => i).ToList();
            var top = order.Take(settings.TopK).Select(i => candidates[i]).ToList();
            var shown = top.Where(c => !c.Abstained).DefaultIfEmpty(top[0]).Select(c => TeamRun.OneLine(c.Text)).ToList();
            var fuseOptions = run.OptionsFor();
            if (settings.FuserMaxResponseLength is { } m) fuseOptions.MaxOutputTokens = m;
            var final = await run.RequireAsync(new TeamAsk(fuser, "fuse", 2, run.Render("fuse", ("candidates", TeamRun.Numbered(shown)), ("candidates_inline", string.Join(" | ", shown))))
            {
                Options = fuseOptions,
                Data = new() { ["ranking"] = order.Select(i => new Dictionary<string, object?> { ["member"] = candidates[i].Member, ["wins"] = wins[i] }).ToList() },
            }, ct).ConfigureAwait(false);
            return run.Finish(final.Text, final.Member);
        }
    }
}
