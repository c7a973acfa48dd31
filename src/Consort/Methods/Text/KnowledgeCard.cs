using Microsoft.Extensions.AI;

namespace Consort.Methods.Text;

/// <summary>How knowledge cards are filtered before the answerer reads them.</summary>
public enum CardRelevance
{
    /// <summary>Every card is kept (MoCo).</summary>
    None,
    /// <summary>Cards ranked by how much more likely the answerer finds the question after the card than without it (needs its token access).</summary>
    Likelihood,
    /// <summary>Cards ranked by the cosine similarity of their embedding to the question's (needs an embedding generator from the host).</summary>
    Embedding,
}

/// <summary>Options of <see cref="KnowledgeCardMethod"/>.</summary>
public sealed class KnowledgeCardOptions : TeamOptions
{
    /// <summary>Whether the answerer writes a card too.</summary>
    [Option("Leave the answerer's own card out (only the other members write knowledge).")]
    public bool ExcludeSelf { get; set; }

    /// <summary>The member that answers with the cards in context.</summary>
    [Option("Member that answers with the cards in its context.", DefaultText = "best member on dev (MoCo)")]
    public string? Answerer { get; set; }

    /// <summary>Card filtering.</summary>
    [Option("Filter the cards before answering: none (MoCo), likelihood (the answerer's), embedding (a host embedding model).")]
    public CardRelevance Relevance { get; set; } = CardRelevance.None;

    /// <summary>Cards kept after filtering.</summary>
    [Option("Cards kept when filtering (the most relevant first).", Min = 1, Max = Limits.MaxRepeats)]
    public int RelevanceTopK { get; set; } = 1;

    /// <summary>Dev questions for choosing the answerer.</summary>
    [Option("Dev questions used to choose the answerer (seeded, stratified sample).", Min = 1, Max = 100_000, DefaultText = "all")]
    public int? DevSample { get; set; }
}

/// <summary>
/// <c>knowledge_card</c>: every member writes a knowledge paragraph for the question (the answerer too, unless
/// <c>exclude_self</c>); the answerer (the best member on dev, or the named one) answers with the cards in context.
/// Cards that say the member does not know are dropped; optional relevance filtering keeps the most relevant ones.
/// </summary>
[CollaborationMethod("knowledge_card", CollaborationLevel.Text, "Members write knowledge cards for the question; the answerer answers with them in context.",
    Aliases = ["text_knowledge_card"], MinModels = 2,
    Reference = "Knowledge Card (Feng et al., 2024), https://arxiv.org/abs/2305.09955")]
public sealed class KnowledgeCardMethod : CollaborationMethod<KnowledgeCardOptions>
{
    /// <summary>Default role prompts (MoCo's wording; {format} carries the task's answer format).</summary>
    public static readonly RolePrompts Prompts = new(new Dictionary<string, RolePrompts.Role>
    {
        ["knowledge"] = new("You are an AI assistant tasked with generating relevant knowledge to help answer the user's question. "
            + "Please provide relevant information that can assist in answering the following question. If you know nothing relevant, say \"unknown\".\n\nQuestion: {question}\n\nRelevant Knowledge:", "question"),
        ["answer_with_knowledge"] = new("You are part of a team of AI assistants collaborating to answer the user's question. Other assistants have provided the following relevant knowledge to help answer the question:\n\n"
            + "Question: {question}\n\nRelevant Knowledge from other assistants:\n{knowledge}\n\nPlease provide a comprehensive answer to the question with the help of the above knowledge. {format}",
            "question", "knowledge", "knowledge_inline"),
    });

    /// <inheritdoc />
    protected override void Validate(KnowledgeCardOptions options, MethodPlan plan)
    {
        options.Check(Prompts, plan, plan.Members.Count);
        var answerer = DevSelection.Member(plan, "answerer", options.Answerer);
        if (answerer is null && !plan.HasDev) throw plan.Error("needs 'answerer' or a task with a dev split to choose the best member on");
        if (options.Relevance == CardRelevance.Likelihood && answerer is { } a && !plan.Members[a].Access.Satisfies(ModelAccess.Tokens))
            throw plan.Error("relevance", $"= likelihood needs token access from the answerer '{plan.Members[a].Name}', which offers only {plan.Members[a].AccessDescription}");
    }

    /// <inheritdoc />
    protected override async Task<ConsortModel> CreateAsync(MethodContext context, KnowledgeCardOptions options, CancellationToken ct)
    {
        int answerer = options.Answerer is { } n ? DevSelection.IndexOf(context, n)
            : await DevSelection.BestAsync(context, options, "the answerer", ct, options.DevSample).ConfigureAwait(false);
        var embed = options.Relevance == CardRelevance.Embedding
            ? context.GetService<IEmbeddingGenerator<string, Embedding<float>>>() ?? throw new ConfigException($"{context.Name}: relevance = embedding needs an embedding model, and the host registered none")
            : null;
        if (options.Relevance == CardRelevance.Likelihood && context.Models[answerer].Tokens is null)
            throw new ConfigException($"{context.Name}: relevance = likelihood needs token access from the answerer '{context.Models[answerer].Name}'");
        var descriptor = DescriptorOf(context, options);
        return new ConsortModel(descriptor, new Client(descriptor, context, options, answerer, embed), null, context.Models, Name);
    }

    private sealed class Client(ModelDescriptor descriptor, MethodContext context, KnowledgeCardOptions settings, int answerer,
        IEmbeddingGenerator<string, Embedding<float>>? embed) : CollaborationChatClient(descriptor)
    {
        protected override async Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct)
        {
            var run = new TeamRun(context.Models, settings, messages, options, trace, context.MaxConcurrency, context.Answers);
            var writers = Enumerable.Range(0, context.Models.Count).Where(i => !settings.ExcludeSelf || i != answerer).ToList();
            var prompt = run.Render("knowledge");
            var cards = await run.RoundAsync(writers.Select(i => new TeamAsk(i, "knowledge", -1, prompt)).ToList(), ct).ConfigureAwait(false);
            IReadOnlyList<TeamReply?> kept = cards;
            var said = cards.Where(c => c is not null && !c.Abstained).Select(c => c!).ToList();
            if (settings.Relevance != CardRelevance.None && said.Count > settings.RelevanceTopK)
                kept = await RankAsync(run, said, ct).ConfigureAwait(false);
            // Cards saying the member knows nothing are left out, unless every card says so.
            var texts = TeamRun.Shown(kept);
            var final = await run.RequireAsync(new TeamAsk(answerer, "answer_with_knowledge", -1,
                run.Render("answer_with_knowledge", ("knowledge", TeamRun.Bullets(texts)), ("knowledge_inline", string.Join(" | ", texts))))
            {
                Data = new() { ["cards"] = texts.Count },
            }, ct).ConfigureAwait(false);
            return run.Finish(final.Text, final.Member);
        }

        private async Task<List<TeamReply>> RankAsync(TeamRun run, List<TeamReply> cards, CancellationToken ct)
        {
            double[] scores;
            if (embed is not null)
            {
                var vectors = await embed.GenerateAsync(cards.Select(c => c.Text).Prepend(run.Question), cancellationToken: ct).ConfigureAwait(false);
                var q = vectors[0].Vector.Span.ToArray();
                scores = vectors.Skip(1).Select(v => Cosine(q, v.Vector.Span.ToArray())).ToArray();
            }
            else
            {
                // How much more likely the answerer finds the question once it has read the card (mean log-probability per token).
                var model = context.Models[answerer].Tokens!;
                var question = model.Tokenizer.Encode(run.Question);
                var bos = model.Tokenizer.Bos is { } b ? new[] { b } : [];
                double Mean(float[] lp) => lp.Length == 0 ? 0 : lp.Average(x => (double)x);
                double baseline = Mean(await model.ScoreAsync(bos, question, ct).ConfigureAwait(false));
                scores = new double[cards.Count];
                for (int i = 0; i < cards.Count; i++)
                {
                    var prefix = model.Tokenizer.Encode(TeamRun.OneLine(cards[i].Text) + "\n", addBos: bos.Length > 0);
                    scores[i] = Mean(await model.ScoreAsync(prefix, question, ct).ConfigureAwait(false)) - baseline;
                }
            }
            var ranked = cards.Select((c, i) => (c, s: scores[i], i)).OrderByDescending(x => x.s).ThenBy(x => x.i).ToList();
            run.Trace.Add(new TraceEntry
            {
                Model = context.Models[answerer].Name, Role = "relevance",
                Data = new() { ["relevance"] = settings.Relevance.ToString().ToLowerInvariant(), ["scores"] = ranked.Select(x => new Dictionary<string, object?> { ["member"] = x.c.Member, ["score"] = x.s }).ToList() },
            });
            return ranked.Take(settings.RelevanceTopK).OrderBy(x => x.i).Select(x => x.c).ToList();
        }

        private static double Cosine(float[] a, float[] b)
        {
            double dot = 0, na = 0, nb = 0;
            for (int i = 0; i < Math.Min(a.Length, b.Length); i++) { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i]; }
            return na == 0 || nb == 0 ? 0 : dot / Math.Sqrt(na * nb);
        }
    }
}
