using Consort.Decoding;
using Microsoft.Extensions.AI;

namespace Consort.Methods.Api;

/// <summary>Options of <see cref="LikelihoodRouterMethod"/>.</summary>
public sealed class LikelihoodRouterOptions : MethodOptions
{
    /// <summary>Subtract each model's mean dev score.</summary>
    [Option("Subtract each model's mean dev score (needs a dev split; skipped without one).")]
    public bool Calibrate { get; set; } = true;

    /// <summary>Dev examples used for calibration.</summary>
    [Option("Dev examples used for calibration.", Min = 1, Max = 100_000)]
    public int CalibrationSize { get; set; } = 32;
}

/// <summary>
/// <c>likelihood_router</c>: each query goes to the model that finds the query itself most likely
/// (mean log-probability of its tokens), a training-free router that picks the expert whose data
/// the query resembles. With a dev split, each model's average score there is subtracted first so
/// that a model that finds everything likely does not win every query.
/// </summary>
[CollaborationMethod("likelihood_router", CollaborationLevel.Api, "Route each query to the model that assigns it the highest likelihood.",
    Requires = ModelAccess.Text | ModelAccess.Tokens, MinModels = 2)]
public sealed class LikelihoodRouterMethod : CollaborationMethod<LikelihoodRouterOptions>
{
    /// <inheritdoc />
    protected override async Task<ConsortModel> CreateAsync(MethodContext context, LikelihoodRouterOptions options, CancellationToken cancellationToken)
    {
        var models = context.Models;
        foreach (var m in models)
            if (m.Tokens is null) throw new ConfigException($"method '{Name}' needs token access to score queries, but model '{m.Name}' has none");
        var offsets = new double[models.Count];
        if (options.Calibrate && context.Dev is { Examples.Count: > 0 } dev)
        {
            var prompts = dev.Examples.Take(options.CalibrationSize).Select(e => PlainPrompt.Render(e.Messages)).ToList();
            for (int i = 0; i < models.Count; i++)
            {
                var scores = await CollaborationChatClient.ParallelAsync(prompts, context.MaxConcurrency,
                    (p, _, ct) => ScoreAsync(models[i].Tokens!, p, ct), cancellationToken).ConfigureAwait(false);
                offsets[i] = scores.Average();
                context.Log?.Invoke($"likelihood_router: '{models[i].Name}' mean dev score {offsets[i]:F3}");
            }
        }
        var descriptor = DescriptorOf(context, options);
        return new ConsortModel(descriptor, new Client(descriptor, models, offsets, options), null, models, Name);
    }

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

    private sealed class Client(ModelDescriptor descriptor, IReadOnlyList<ConsortModel> models, double[] offsets, MethodOptions settings)
        : CollaborationChatClient(descriptor)
    {
        protected override async Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct)
        {
            var text = PlainPrompt.Render(messages);
            var scores = new double[models.Count];
            await Task.WhenAll(models.Select(async (m, i) =>
            {
                var sw = System.Diagnostics.Stopwatch.StartNew();
                scores[i] = await ScoreAsync(m.Tokens!, text, ct).ConfigureAwait(false) - offsets[i];
                trace.Add(new TraceEntry
                {
                    Model = m.Name, Role = "score query", Input = LastUserText(messages), LatencyMs = sw.Elapsed.TotalMilliseconds,
                    InputTokens = m.Tokens!.Tokenizer.Encode(text).Length, Data = new() { ["score"] = scores[i] },
                });
            })).ConfigureAwait(false);
            int best = Array.IndexOf(scores, scores.Max());
            var response = await CallAsync(models[best], messages, settings.Apply(options), trace, "answer", ct).ConfigureAwait(false);
            return AnswerFrom(response.Text, models[best].Name);
        }
    }
}
