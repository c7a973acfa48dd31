using System.Diagnostics;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;

namespace Consort.Methods.Text;

/// <summary>Options of <see cref="MixtureOfAgentsMethod"/>.</summary>
public sealed class MixtureOfAgentsOptions : TeamOptions
{
    /// <summary>Layers of proposers.</summary>
    [Option("Layers of proposers: the first answers the question, each further layer answers with the previous layer's answers as references.",
        Min = 1, Max = Limits.MaxRepeats, Aliases = ["rounds", "num_layers"])]
    public int Layers { get; set; } = 2;

    /// <summary>Proposers (member names).</summary>
    [Option("Members that propose in every layer.", DefaultText = "every member")]
    public string[]? Proposers { get; set; }

    /// <summary>The aggregator (a member name).</summary>
    [Option("Member that writes the final answer from the last layer's answers (its tokens stream).", DefaultText = "first member")]
    public string? Aggregator { get; set; }
}

/// <summary>
/// <c>mixture_of_agents</c>: layers of proposers (a layer's proposers in parallel, each later layer seeing the previous
/// layer's answers as references), then an aggregator that synthesizes the last layer's answers. The aggregator's tokens
/// stream through <c>GetStreamingResponseAsync</c> (and <c>consort serve</c>) as it writes them. Answers that say the member
/// does not know are not shown as references.
/// </summary>
[CollaborationMethod("mixture_of_agents", CollaborationLevel.Text, "Layers of proposers refine each other's answers; an aggregator synthesizes the last layer (streamed).",
    Aliases = ["text_moa", "moa", "text_mixture_of_agents"], MinModels = 1,
    Reference = "Mixture-of-Agents (Wang et al., 2024), https://arxiv.org/abs/2406.04692")]
public sealed class MixtureOfAgentsMethod : CollaborationMethod<MixtureOfAgentsOptions>
{
    private const string ReferencePrompt = "You have been provided with a set of responses from various models to the latest user query. "
        + "Your task is to synthesize these responses into a single, high-quality response. Critically evaluate the information provided in these responses, "
        + "recognizing that some of it may be biased or incorrect. Do not simply replicate the given answers; offer a refined, accurate and comprehensive reply.\n\n"
        + "Responses from models:\n{references}\n\nQuestion: {question}\n{format}";

    /// <summary>Default role prompts (the paper's aggregate-and-synthesize prompt).</summary>
    public static readonly RolePrompts Prompts = new(new Dictionary<string, RolePrompts.Role>
    {
        ["propose"] = new("{question}", "question"),
        ["propose_with_references"] = new(ReferencePrompt, "question", "references", "references_inline"),
        ["aggregate"] = new(ReferencePrompt, "question", "references", "references_inline"),
    });

    /// <inheritdoc />
    protected override void Validate(MixtureOfAgentsOptions options, MethodPlan plan)
    {
        var proposers = (options.Proposers ?? plan.Members.Select(m => m.Name).ToArray()).Select(p => DevSelection.Member(plan, "proposers", p)!.Value).ToList();
        if (proposers.Count == 0) throw plan.Error("proposers", "is empty; name at least one member");
        if (proposers.Distinct().Count() != proposers.Count) throw plan.Error("proposers", "names a member twice");
        DevSelection.Member(plan, "aggregator", options.Aggregator);
        options.Check(Prompts, plan, proposers.Count);
    }

    /// <inheritdoc />
    protected override Task<ConsortModel> CreateAsync(MethodContext context, MixtureOfAgentsOptions options, CancellationToken ct)
    {
        var proposers = (options.Proposers ?? context.Models.Select(m => m.Name).ToArray()).Select(p => DevSelection.IndexOf(context, p)).ToArray();
        int aggregator = options.Aggregator is { } a ? DevSelection.IndexOf(context, a) : 0;
        var descriptor = DescriptorOf(context, options);
        return Task.FromResult(new ConsortModel(descriptor, new Client(descriptor, context, options, proposers, aggregator), null, context.Models, Name));
    }

    private sealed class Client(ModelDescriptor descriptor, MethodContext context, MixtureOfAgentsOptions settings, int[] proposers, int aggregator)
        : CollaborationChatClient(descriptor)
    {
        private async Task<(TeamRun Run, string Prompt)> ProposeAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct)
        {
            var run = new TeamRun(context.Models, settings, messages, options, trace, context.MaxConcurrency, context.Answers);
            List<TeamReply> previous = [];
            for (int layer = 0; layer < settings.Layers && run.Budget.Allows; layer++)
            {
                var refs = TeamRun.Shown(previous);
                var asks = proposers.Select(p => layer == 0 || refs.Count == 0
                    ? new TeamAsk(p, "propose", layer, run.Render("propose"))
                    : new TeamAsk(p, "propose_with_references", layer, run.Render("propose_with_references", ("references", TeamRun.Numbered(refs)), ("references_inline", string.Join(" | ", refs))))).ToList();
                var replies = await run.RoundAsync(asks, ct).ConfigureAwait(false);
                if (replies.All(r => r is null)) break; // budget: keep the last complete layer
                previous = replies.Where(r => r is not null).Select(r => r!).ToList();
            }
            var last = TeamRun.Shown(previous);
            return (run, run.Render("aggregate", ("references", TeamRun.Numbered(last)), ("references_inline", string.Join(" | ", last))));
        }

        protected override async Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct)
        {
            var (run, prompt) = await ProposeAsync(messages, options, trace, ct).ConfigureAwait(false);
            var final = await run.RequireAsync(new TeamAsk(aggregator, "aggregate", -1, prompt), ct).ConfigureAwait(false);
            return run.Finish(final.Text, final.Member);
        }

        public override async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
            [EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            var trace = new CallTrace();
            var list = messages as IReadOnlyList<ChatMessage> ?? messages.ToList();
            var (run, prompt) = await ProposeAsync(list, options, trace, cancellationToken).ConfigureAwait(false);
            var member = context.Models[aggregator];
            run.Budget.TryStart(force: true); // the final answer's call is always made
            var sw = Stopwatch.StartNew();
            var updates = new List<ChatResponseUpdate>();
            var agg = run.MessagesFor(prompt);
            // The aggregator's pieces go out as it writes them; its usage is reported once, with the whole collaboration's.
            await foreach (var u in member.Chat.GetStreamingResponseAsync(agg, run.OptionsFor(), cancellationToken).ConfigureAwait(false))
            {
                updates.Add(u);
                var text = u.Contents.Where(c => c is not UsageContent).ToList();
                if (text.Count == 0) continue;
                yield return new ChatResponseUpdate(ChatRole.Assistant, text) { ModelId = Descriptor.Name, FinishReason = u.FinishReason };
            }
            var response = updates.ToChatResponse();
            trace.Add(response.ToTraceEntry(member.Descriptor, "aggregate", prompt, sw.Elapsed, new() { ["role"] = "aggregate", ["round"] = -1, ["answer"] = run.AnswerOf(response.Text), ["streamed"] = true }));
            var done = run.Finish(response.Text, member.Name).WithTrace(trace);
            var tail = new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(done.Usage!)])
            {
                ModelId = Descriptor.Name, FinishReason = response.FinishReason ?? ChatFinishReason.Stop, AdditionalProperties = done.AdditionalProperties,
            };
            yield return tail;
        }
    }
}
