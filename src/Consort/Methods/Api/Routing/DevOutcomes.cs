using Microsoft.Extensions.AI;

namespace Consort.Methods.Api.Routing;

/// <summary>
/// What every member did on every dev example (each answers once, with the task's generation options): the task's
/// score of the answer and its cost. Cost is the call's price when every member has one, else its tokens
/// (input + output): measured, never a constant. What routers are trained on.
/// </summary>
/// <param name="Examples">The dev examples, in order.</param>
/// <param name="Quality">[example][member] score in [0, 1].</param>
/// <param name="Cost">[example][member] cost in <paramref name="CostUnit"/>.</param>
/// <param name="CostUnit">"usd" or "tokens".</param>
/// <param name="Outputs">[example][member] answer text.</param>
public sealed record DevOutcomes(IReadOnlyList<FitExample> Examples, double[][] Quality, double[][] Cost, string CostUnit, string[][] Outputs)
{
    /// <summary>Asks every member every example (bounded by <paramref name="concurrency"/>), scores and costs the answers.</summary>
    /// <param name="models">The members.</param>
    /// <param name="examples">Dev examples.</param>
    /// <param name="options">Turns an example's task options into the call's options (the method's settings applied).</param>
    /// <param name="concurrency">Most calls at once.</param>
    /// <param name="cancellationToken">Cancels the calls.</param>
    public static async Task<DevOutcomes> MeasureAsync(IReadOnlyList<ConsortModel> models, IReadOnlyList<FitExample> examples,
        Func<FitExample, ChatOptions> options, int concurrency, CancellationToken cancellationToken)
    {
        bool priced = models.All(m => m.Descriptor.InputPricePerMillion is not null && m.Descriptor.OutputPricePerMillion is not null);
        var jobs = examples.SelectMany((_, i) => models.Select((_, m) => (I: i, M: m))).ToArray();
        var answers = await CollaborationChatClient.ParallelAsync(jobs, concurrency, async (job, _, ct) =>
        {
            var ex = examples[job.I];
            var r = await models[job.M].Chat.GetResponseAsync(ex.Messages, options(ex), ct).ConfigureAwait(false);
            double tokens = (r.Usage?.InputTokenCount ?? 0) + (r.Usage?.OutputTokenCount ?? 0);
            double cost = priced ? (double)(r.GetCost() ?? 0m) : tokens;
            return (Text: r.Text, Score: ex.Score(r.Text), Cost: cost);
        }, cancellationToken).ConfigureAwait(false);
        int n = examples.Count, k = models.Count;
        var quality = new double[n][]; var costs = new double[n][]; var outputs = new string[n][];
        for (int i = 0; i < n; i++) { quality[i] = new double[k]; costs[i] = new double[k]; outputs[i] = new string[k]; }
        for (int j = 0; j < jobs.Length; j++)
        {
            var (i, m) = jobs[j];
            quality[i][m] = answers[j].Score; costs[i][m] = answers[j].Cost; outputs[i][m] = answers[j].Text;
        }
        return new DevOutcomes(examples, quality, costs, priced ? "usd" : "tokens", outputs);
    }

    /// <summary>Each member's mean dev score.</summary>
    public double[] MeanQuality() => Enumerable.Range(0, Quality.Length == 0 ? 0 : Quality[0].Length).Select(m => Quality.Average(q => q[m])).ToArray();

    /// <summary>The member with the best mean dev score (the first on ties).</summary>
    public int Best() => Router.ArgMax(MeanQuality());

    /// <summary>The text a router reads for an example: its messages' texts, joined.</summary>
    public static string QueryText(IReadOnlyList<ChatMessage> messages) => string.Join("\n", messages.Select(m => m.Text));

    /// <summary>The routing data set over <paramref name="embeddings"/> of the examples' queries.</summary>
    public RoutingDataset ToDataset(IReadOnlyList<string> models, IReadOnlyList<float[]> embeddings) => new(models, embeddings, Quality, Cost);
}
