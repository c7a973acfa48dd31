using Microsoft.Extensions.AI;

namespace Consort.Methods.Api.Routing;

/// <summary>
/// The serving side of the learned routers (trained_router, graph_routing): embeds the query, asks the router for
/// each member's predicted utility, and calls the best member (or, with a threshold, the strong member only when its
/// predicted lead reaches it). The trace records every member's score and the strong member's lead.
/// </summary>
internal sealed class EmbeddingRouterClient(ModelDescriptor descriptor, IReadOnlyList<ConsortModel> models, Router router,
    IEmbeddingGenerator<string, Embedding<float>> embedder, double? threshold, MethodOptions settings) : CollaborationChatClient(descriptor)
{
    /// <summary>Embeds texts (one call).</summary>
    public static async Task<float[][]> EmbedAsync(IEmbeddingGenerator<string, Embedding<float>> embedder, IReadOnlyList<string> texts, CancellationToken ct) =>
        (await embedder.GenerateAsync(texts, cancellationToken: ct).ConfigureAwait(false)).Select(e => e.Vector.ToArray()).ToArray();

    protected override async Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct)
    {
        var e = (await EmbedAsync(embedder, [DevOutcomes.QueryText(messages)], ct).ConfigureAwait(false))[0];
        var scores = router.Predict(e);
        int chosen = threshold is { } t ? Router.Route(scores, router.Strong, t) : Router.ArgMax(scores);
        var response = await CallAsync(models[chosen], messages, settings.Apply(options), trace, "answer", ct, _ => new()
        {
            ["router"] = router.Kind,
            ["scores"] = models.Select((m, i) => KeyValuePair.Create(m.Name, (object?)scores[i])).ToDictionary(),
            ["strong"] = models[router.Strong].Name,
            ["strong_advantage"] = Router.StrongAdvantage(scores, router.Strong),
        }).ConfigureAwait(false);
        return AnswerFrom(response.Text, models[chosen].Name);
    }
}
