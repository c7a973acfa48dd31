using Consort.Methods.Api.Routing;
using Microsoft.Extensions.AI;

namespace Consort.Methods.Api;

/// <summary>Options of <see cref="PromptRoutingMethod"/>.</summary>
public sealed class PromptRoutingOptions : MethodOptions
{
    /// <summary>One description per member, in member order (MoCo's model_descriptions).</summary>
    [Option("One description per member, in member order: what the router reads.")]
    public List<string>? ModelDescriptions { get; set; }

    /// <summary>The member that routes; null = the best on dev.</summary>
    [Option("Member that reads the query and names a candidate.", DefaultText = "best member on dev")]
    public string? RouterModel { get; set; }

    /// <summary>Dev examples that pick the router and the fallback.</summary>
    [Option("Dev examples scored to pick the router (and the fallback).", Min = 1, Max = 1_000_000)]
    public int DevSize { get; set; } = 64;

    /// <summary>Role prompt overrides.</summary>
    [Option("Role prompt overrides (role: template); role 'route' fills {question} and {candidates}.", DefaultText = "none")]
    public Dictionary<string, string>? Prompts { get; set; }

    /// <summary>A JSON file of role prompt overrides.</summary>
    [Option("JSON file of role prompt overrides.", DefaultText = "none")]
    public string? PromptsFile { get; set; }
}

/// <summary>
/// <c>prompt_routing</c> (MoCo's <c>api_prompt_routing</c>): a router model reads the query and the members'
/// descriptions and names one; that member answers. The router is the member named by <c>router_model</c>, else the
/// one that scores best on the dev split (MoCo's choice); the answer is read by name, number or letter, and when it
/// names none the best dev member answers and the trace says "fallback".
/// </summary>
[CollaborationMethod("prompt_routing", CollaborationLevel.Api,
    "A router model reads the query and the members' descriptions and names the one to answer.",
    Aliases = ["api_prompt_routing"], Reference = "MoCo api_prompt_routing (Feng et al., 2025), https://github.com/BunsenFeng/model_collaboration",
    MinModels = 2)]
public sealed class PromptRoutingMethod : CollaborationMethod<PromptRoutingOptions>
{
    /// <summary>The routing prompt (MoCo's wording).</summary>
    public static readonly RolePrompts DefaultPrompts = new(new Dictionary<string, RolePrompts.Role>
    {
        ["route"] = new("You are an AI assistant that routes user questions to the most suitable AI model based on their descriptions.\n\n" +
                        "User question: {question}\n\nModel descriptions:\n{candidates}\n" +
                        "Based on the above descriptions, which model is best suited to answer the user's question? Respond with the model number only.",
            "question", "candidates"),
    });

    /// <inheritdoc />
    protected override void Validate(PromptRoutingOptions options, MethodPlan plan)
    {
        if (options.ModelDescriptions is not { } d) throw plan.Error("model_descriptions", "is required: one description per member");
        if (d.Count != plan.Members.Count)
            throw plan.Error("model_descriptions", $"has {d.Count} description(s) for {plan.Members.Count} members ({string.Join(", ", plan.Members.Select(m => m.Name))})");
        if (options.RouterModel is { } r && plan.Members.All(m => m.Name != r))
            throw plan.Error("router_model", $"names '{r}', which is not a member; members: {string.Join(", ", plan.Members.Select(m => m.Name))}");
        if (options.RouterModel is null && !plan.HasDev)
            throw plan.Error("needs 'router_model' or a task with a dev split to pick the best member as router");
        DefaultPrompts.With(options.Prompts, options.PromptsFile, plan.BaseDirectory, plan.Where);
    }

    /// <inheritdoc />
    protected override async Task<ConsortModel> CreateAsync(MethodContext context, PromptRoutingOptions options, CancellationToken ct)
    {
        var models = context.Models;
        var prompts = DefaultPrompts.With(options.Prompts, options.PromptsFile, context.BaseDirectory ?? Environment.CurrentDirectory, $"method '{Name}'");
        int best;
        if (context.Dev is { Examples.Count: > 0 } dev)
        {
            var outcomes = await DevOutcomes.MeasureAsync(models, dev.Sample(options.DevSize, context.Seed), ex => options.Apply(ex.Options), context.MaxConcurrency, ct).ConfigureAwait(false);
            var means = outcomes.MeanQuality();
            best = outcomes.Best();
            context.Log?.Invoke($"prompt_routing: dev scores {string.Join(", ", models.Select((m, i) => $"{m.Name} {means[i]:F3}"))}; best '{models[best].Name}'");
        }
        else best = models.Select((m, i) => (m, i)).First(x => x.m.Name == options.RouterModel).i;
        int router = options.RouterModel is { } r ? models.Select((m, i) => (m, i)).First(x => x.m.Name == r).i : best;
        var descriptor = DescriptorOf(context, options);
        return new ConsortModel(descriptor, new Client(descriptor, models, router, best, options.ModelDescriptions!, prompts, options, context.Answers), null, models, Name);
    }

    /// <summary>The candidate list the router reads: "- 1: description" per member (MoCo's format).</summary>
    public static string Candidates(IReadOnlyList<string> descriptions) => string.Concat(descriptions.Select((d, i) => $"- {i + 1}: {d}\n"));

    private sealed class Client(ModelDescriptor descriptor, IReadOnlyList<ConsortModel> models, int router, int fallback, IReadOnlyList<string> descriptions,
        RolePrompts prompts, PromptRoutingOptions settings, AnswerExtractor answers) : CollaborationChatClient(descriptor)
    {
        protected override async Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct)
        {
            var question = DevOutcomes.QueryText(messages);
            var prompt = prompts.Render("route", new Dictionary<string, string> { ["question"] = question, ["candidates"] = Candidates(descriptions) }, AnswerExtractor.From(options, answers));
            int? chosen = null;
            var routing = settings.Apply(options);
            routing.StopSequences = null; // the task's stop strings are for answers, not for the router's choice
            await CallAsync(models[router], [new ChatMessage(ChatRole.User, prompt)], routing, trace, "route", ct, r =>
            {
                chosen = ChoiceParser.Parse(r.Text, models.Select(m => m.Name).ToArray());
                return new() { ["chosen"] = chosen is { } c ? models[c].Name : null, ["fallback"] = chosen is null };
            }).ConfigureAwait(false);
            int target = chosen ?? fallback;
            var response = await CallAsync(models[target], messages, settings.Apply(options), trace, chosen is null ? "answer (fallback)" : "answer", ct).ConfigureAwait(false);
            return AnswerFrom(response.Text, models[target].Name);
        }
    }
}
