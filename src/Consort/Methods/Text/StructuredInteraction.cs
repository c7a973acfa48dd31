using Microsoft.Extensions.AI;

namespace Consort.Methods.Text;

/// <summary>Communication topologies of <see cref="StructuredInteractionMethod"/> (MoCo's <c>structure_type</c>).</summary>
public enum Topology
{
    /// <summary>Each member talks with its neighbours in config order (both ways).</summary>
    Chain,
    /// <summary>A binary tree in config order (member i with 2i+1 and 2i+2, both ways).</summary>
    Tree,
    /// <summary>MoCo's star: the first member with everyone, plus a ring through the others.</summary>
    Star,
    /// <summary>A ring.</summary>
    Circle,
    /// <summary>Everyone with everyone.</summary>
    Complete,
    /// <summary>Given by <c>structure_matrix</c>.</summary>
    Other,
}

/// <summary>How <see cref="StructuredInteractionMethod"/> answers at the end.</summary>
public enum TopologyFinal
{
    /// <summary>The last answer of the member best on dev (MoCo).</summary>
    [OptionValue("best_dev", "dev", "best")]
    BestDev,
    /// <summary>The most common last answer (abstentions do not vote).</summary>
    Vote,
}

/// <summary>Options of <see cref="StructuredInteractionMethod"/>.</summary>
public sealed class StructuredInteractionOptions : TeamOptions
{
    /// <summary>Rounds (the first is the independent answers).</summary>
    [Option("Rounds of answers: the first answers alone, each later one revises after reading its in-neighbours' previous answers.",
        Aliases = ["round", "rounds"], Min = 1, Max = Limits.MaxRepeats)]
    public int NumRounds { get; set; } = 3;

    /// <summary>The topology.</summary>
    [Option("Topology: chain, tree, star, circle, complete (all both ways), or other with structure_matrix.", DefaultText = "required")]
    public Topology? StructureType { get; set; }

    /// <summary>The adjacency matrix for <c>other</c>.</summary>
    [Option("N x N matrix of 0/1 for structure_type other: M[i][j] = 1 means member j sees member i's answers.")]
    public int[][]? StructureMatrix { get; set; }

    /// <summary>How the final answer is made.</summary>
    [Option("best_dev (MoCo: the last answer of the member best on dev) or vote.", Aliases = ["aggregate"])]
    public TopologyFinal Final { get; set; } = TopologyFinal.BestDev;

    /// <summary>Dev questions for choosing the final member.</summary>
    [Option("Dev questions used to choose the final member (seeded, stratified sample).", Min = 1, Max = 100_000, DefaultText = "all")]
    public int? DevSample { get; set; }
}

/// <summary>
/// <c>structured_interaction</c>: answers flow along a topology for <c>num_rounds</c> rounds; in each round a member reads
/// its in-neighbours' previous answers and revises (a member without in-edges keeps its answer); the final answer is the
/// last answer of the member best on dev (MoCo) or a vote.
/// </summary>
[CollaborationMethod("structured_interaction", CollaborationLevel.Text, "Answers flow along a topology (chain, tree, star, circle, complete, custom) for some rounds.",
    Aliases = ["text_structure", "structure"], MinModels = 2,
    Reference = "NetSafe (Yu et al., 2025), https://aclanthology.org/2025.findings-acl.150/")]
public sealed class StructuredInteractionMethod : CollaborationMethod<StructuredInteractionOptions>
{
    /// <summary>Default role prompts (MoCo's wording).</summary>
    public static readonly RolePrompts Prompts = new(new Dictionary<string, RolePrompts.Role>
    {
        ["answer"] = new("{question}", "question"),
        ["revise"] = new("Task: {question}\nBased on your previous response and the responses from other AI assistants, provide an updated response.\n"
            + "Your previous response: {previous}\nResponses from other AI assistants:\n{others}\n\nPlease consider the above information carefully and provide your updated response. {format}",
            "question", "previous", "others", "others_inline"),
    });

    /// <summary>The adjacency matrix (M[i][j] = 1: j sees i) of a topology over <paramref name="n"/> members, as MoCo builds it.</summary>
    public static int[][] Adjacency(Topology type, int n, int[][]? matrix)
    {
        var m = Enumerable.Range(0, n).Select(_ => new int[n]).ToArray();
        void Both(int a, int b) { if (a != b) { m[a][b] = 1; m[b][a] = 1; } }
        switch (type)
        {
            case Topology.Complete: for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) if (i != j) m[i][j] = 1; break;
            case Topology.Tree: for (int i = 0; i < n; i++) { if (2 * i + 1 < n) Both(i, 2 * i + 1); if (2 * i + 2 < n) Both(i, 2 * i + 2); } break;
            case Topology.Chain: for (int i = 0; i + 1 < n; i++) Both(i, i + 1); break;
            case Topology.Star:
                for (int i = 1; i < n; i++) Both(0, i);
                for (int i = 1; i + 1 < n; i++) Both(i, i + 1);
                if (n > 2) Both(1, n - 1);
                break;
            case Topology.Circle: for (int i = 0; i < n; i++) Both(i, (i + 1) % n); break;
            case Topology.Other: return matrix!.Select(r => (int[])r.Clone()).ToArray();
        }
        return m;
    }

    /// <inheritdoc />
    protected override void Validate(StructuredInteractionOptions options, MethodPlan plan)
    {
        options.Check(Prompts, plan, plan.Members.Count);
        int n = plan.Members.Count;
        if (options.StructureType is not { } type) throw plan.Error("structure_type", "is required: chain, tree, star, circle, complete or other");
        if (type == Topology.Other)
        {
            var m = options.StructureMatrix ?? throw plan.Error("structure_matrix", "is required when structure_type is other");
            if (m.Length != n || m.Any(r => r is null || r.Length != n))
                throw plan.Error("structure_matrix", $"must be {n} x {n} (one row and column per member), got {m.Length} row(s) of {string.Join("/", m.Select(r => r?.Length ?? 0).Distinct())}");
            for (int i = 0; i < n; i++)
                for (int j = 0; j < n; j++)
                    if (m[i][j] is not (0 or 1)) throw plan.Error("structure_matrix", $"[{i}][{j}] = {m[i][j]}: entries must be 0 or 1");
        }
        if (options.Final == TopologyFinal.BestDev && !plan.HasDev) throw plan.Error("final", "= best_dev needs a task with a dev split (or use final: vote)");
    }

    /// <inheritdoc />
    protected override async Task<ConsortModel> CreateAsync(MethodContext context, StructuredInteractionOptions options, CancellationToken ct)
    {
        var adjacency = Adjacency(options.StructureType!.Value, context.Models.Count, options.StructureMatrix);
        int best = options.Final == TopologyFinal.Vote ? -1 : await DevSelection.BestAsync(context, options, "the final member", ct, options.DevSample).ConfigureAwait(false);
        context.Log?.Invoke($"{context.Name}: {options.StructureType.ToString()!.ToLowerInvariant()} topology " + string.Join(" ", adjacency.Select(r => "[" + string.Join(",", r) + "]")));
        var descriptor = DescriptorOf(context, options);
        return new ConsortModel(descriptor, new Client(descriptor, context, options, adjacency, best), null, context.Models, Name);
    }

    private sealed class Client(ModelDescriptor descriptor, MethodContext context, StructuredInteractionOptions settings, int[][] adjacency, int best) : CollaborationChatClient(descriptor)
    {
        protected override async Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct)
        {
            var run = new TeamRun(context.Models, settings, messages, options, trace, context.MaxConcurrency, context.Answers);
            int n = context.Models.Count;
            var latest = await run.RoundAsync(Enumerable.Range(0, n).Select(i => new TeamAsk(i, "answer", 0, run.Render("answer"))).ToList(), ct).ConfigureAwait(false);
            for (int round = 1; round < settings.NumRounds && run.Budget.Allows; round++)
            {
                var asks = new List<TeamAsk>();
                var who = new List<int>();
                for (int j = 0; j < n; j++)
                {
                    var sources = Enumerable.Range(0, n).Where(i => adjacency[i][j] == 1 && latest[i] is not null).ToList();
                    if (sources.Count == 0 || latest[j] is null) continue; // no in-edges: keeps its answer
                    var others = TeamRun.Shown(sources.Select(i => latest[i]));
                    asks.Add(new TeamAsk(j, "revise", round, run.Render("revise", ("previous", TeamRun.OneLine(latest[j]!.Text)),
                        ("others", string.Join("\n", others.Select((o, k) => $"Assistant {k + 1}: {o}"))), ("others_inline", string.Join(" | ", others))))
                    {
                        Data = new() { ["sees"] = sources.Select(i => context.Models[i].Name).ToList() },
                    });
                    who.Add(j);
                }
                var replies = await run.RoundAsync(asks, ct).ConfigureAwait(false);
                var next = (TeamReply?[])latest.Clone();
                for (int k = 0; k < who.Count; k++) next[who[k]] = replies[k] ?? latest[who[k]];
                latest = next;
            }
            if (best >= 0)
            {
                var r = latest[best] ?? TeamFinal.Vote(latest) ?? throw new ConsortException("no member answered");
                return run.Finish(r.Text, r.Member);
            }
            var v = TeamFinal.Vote(latest) ?? latest.FirstOrDefault(x => x is not null) ?? throw new ConsortException("no member answered");
            return run.Finish(v.Text, v.Member);
        }
    }
}
