using Microsoft.Extensions.AI;

namespace Consort.Methods.Api;

/// <summary>
/// <c>likelihood_router</c>: each query goes to the model that finds the query itself most likely
/// (mean log-probability of its tokens), a training-free router that picks the expert whose data
/// the query resembles. With a dev split, each model's average score there is subtracted first so
/// that a model that finds everything likely does not win every query.
/// </summary>
public sealed class LikelihoodRouterMethod : ICollaborationMethod
{
    /// <inheritdoc />
    public string Name => "likelihood_router";
    /// <inheritdoc />
    public CollaborationLevel Level => CollaborationLevel.Api;
    /// <inheritdoc />
    public string Description => "Route each query to the model that assigns it the highest likelihood.";
    /// <inheritdoc />
    public ModelAccess Requires => ModelAccess.Text | ModelAccess.Tokens;
    /// <inheritdoc />
    public bool RequiresSharedVocabulary => false;
    /// <inheritdoc />
    public int MinModels => 2;
    /// <inheritdoc />
    public int MaxModels => int.MaxValue;
    /// <inheritdoc />
    public IReadOnlyList<HyperparameterSpec> Hyperparameters =>
    [
        new("calibrate", "bool", "true", "Subtract each model's mean dev score (needs a dev split; skipped without one)."),
        new("calibration_size", "int", "32", "Dev examples used for calibration."),
    ];

    /// <inheritdoc />
    public async Task<ConsortModel> CreateAsync(MethodContext context, CancellationToken cancellationToken = default)
    {
        var h = context.Hyperparameters;
        var models = context.Models;
        foreach (var m in models)
            if (m.Tokens is null) throw new ConfigException($"method '{Name}' needs token access to score queries, but model '{m.Name}' has none");
        var offsets = new double[models.Count];
        if (h.Get("calibrate", true) && context.Dev is { Examples.Count: > 0 } dev)
        {
            var prompts = dev.Examples.Take(Math.Max(1, h.Get("calibration_size", 32))).Select(e => PromptText(e.Messages)).ToList();
            for (int i = 0; i < models.Count; i++)
            {
                var scores = await CollaborationChatClient.ParallelAsync(prompts, context.MaxConcurrency,
                    (p, _, ct) => ScoreAsync(models[i].Tokens!, p, ct), cancellationToken).ConfigureAwait(false);
                offsets[i] = scores.Average();
                context.Log?.Invoke($"likelihood_router: '{models[i].Name}' mean dev score {offsets[i]:F3}");
            }
        }
        var descriptor = new ModelDescriptor { Name = context.Name, Access = ModelAccess.Text, ContextSize = models.Min(m => m.Descriptor.ContextSize) };
        return new ConsortModel(descriptor, new Client(descriptor, models, offsets, GenerationSettings.From(h)), null, models, Name);
    }

    /// <summary>The text a model is scored on: the messages' texts joined, as a base model would see them.</summary>
    public static string PromptText(IReadOnlyList<ChatMessage> messages) => string.Join("\n", messages.Select(m => m.Text));

    /// <summary>Mean log-probability per token of <paramref name="text"/> (after BOS where the model has one).</summary>
    public static async Task<double> ScoreAsync(ITokenModel model, string text, CancellationToken ct)
    {
        var tokens = model.Tokenizer.Encode(text, addBos: false);
        if (tokens.Length == 0) return 0;
        int[] prompt;
        int[] rest;
        if (model.Tokenizer.Bos is int bos) { prompt = [bos]; rest = tokens; }
        else { prompt = tokens[..1]; rest = tokens[1..]; }
        if (rest.Length == 0) return 0;
        var lp = await model.ScoreAsync(prompt, rest, ct).ConfigureAwait(false);
        return lp.Average(x => (double)x);
    }

    private sealed class Client(ModelDescriptor descriptor, IReadOnlyList<ConsortModel> models, double[] offsets, GenerationSettings settings)
        : CollaborationChatClient(descriptor)
    {
        protected override async Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct)
        {
            var text = PromptText(messages);
            var scores = new double[models.Count];
            await Task.WhenAll(models.Select(async (m, i) =>
            {
                var sw = System.Diagnostics.Stopwatch.StartNew();
                scores[i] = await ScoreAsync(m.Tokens!, text, ct).ConfigureAwait(false) - offsets[i];
                trace.Add(new TraceEntry
                {
                    Model = m.Name, Role = "score query", Input = CallerText(messages), LatencyMs = sw.Elapsed.TotalMilliseconds,
                    InputTokens = m.Tokens!.Tokenizer.Encode(text).Length, Data = new() { ["score"] = scores[i] },
                });
            })).ConfigureAwait(false);
            int best = Array.IndexOf(scores, scores.Max());
            var response = await CallAsync(models[best], messages, settings.Apply(options), trace, "answer", ct).ConfigureAwait(false);
            var answer = Answer(response.Text);
            answer.AdditionalProperties = new() { ["consort.answered_by"] = models[best].Name };
            return answer;
        }

        private static string? CallerText(IReadOnlyList<ChatMessage> messages) => LastUserText(messages);
    }
}
