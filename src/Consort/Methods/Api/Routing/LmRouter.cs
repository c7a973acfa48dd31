using System.Text.Json;
using System.Text.Json.Nodes;
using Consort.Config;
using Microsoft.Extensions.AI;

namespace Consort.Methods.Api.Routing;

/// <summary>
/// trained_router's <c>lm</c> router (MoCo's): every member answers the dev examples once; a small local model
/// (<c>router_base_model</c>, default zoo:base) is fine-tuned through the host's <see cref="IAnswerModelTrainer"/> to write,
/// after a query, the name of the member with the best utility on it (quality − λ·cost; ties: the best member on dev).
/// At test time it writes a name for each query, read by <see cref="ChoiceParser"/>; a name it does not write sends the
/// query to the best dev member, and the trace says "fallback". With <c>router_path</c> the fine-tuned GGUF is kept there
/// (with a <c>.json</c> beside it saying which members it routes) and reused without training.
/// </summary>
public static class LmRouter
{
    /// <summary>The base fine-tuned when <c>router_base_model</c> is not given.</summary>
    public const string DefaultBase = "zoo:base";

    /// <summary>What the router model reads: the tail of the query (so it fits a small context) and the cue.</summary>
    public static string Prompt(string query, int maxChars)
    {
        var q = query.Replace('\n', ' ').Trim();
        if (q.Length > maxChars) q = q[^maxChars..];
        return q + "\nmodel:";
    }

    /// <summary>Trains (or loads) the router model and returns the routing collaboration.</summary>
    public static async Task<ConsortModel> CreateAsync(MethodContext context, TrainedRouterOptions options, ModelDescriptor descriptor, string method, CancellationToken ct)
    {
        var models = context.Models;
        var names = models.Select(m => m.Name).ToArray();
        string baseDir = context.BaseDirectory ?? Environment.CurrentDirectory;
        var refs = context.GetService<IModelReferences>() ?? throw new ConsortException($"method '{method}': router lm needs a host that loads local models");
        var loader = context.Loader ?? throw new ConsortException($"method '{method}': router lm needs a host that loads local models");
        var baseSpec = refs.Parse(JsonValue.Create(options.RouterBaseModel ?? DefaultBase), baseDir, $"method '{method}': hyperparameter 'router_base_model'") as GgufModelSpec
            ?? throw new ConfigException($"method '{method}': 'router_base_model' must be a local GGUF model");
        var identity = RouterIdentity.For(models.Select(m => m.Descriptor).ToArray(), $"lm:{Path.GetFileName(baseSpec.Path)}", $"router=lm; cost_weight={options.CostWeight:R}");
        string? kept = options.RouterPath is { } p ? Path.GetFullPath(p, baseDir) : null;
        string path = kept ?? Path.Combine(Path.GetTempPath(), $"consort-lm-router-{Guid.NewGuid():N}.gguf");
        var temp = kept is null ? new TempFile(path) : null;
        try
        {
            int fallback;
            // The router model reads at most half its context: its prompt and the name it writes must fit.
            const int maxChars = 64;
            if (kept is not null && File.Exists(kept))
            {
                fallback = ReadSidecar(kept, identity, names, method);
                context.Log?.Invoke($"trained_router: loaded the lm router from {kept}");
            }
            else
            {
                var dev = context.Dev ?? throw new ConfigException($"method '{method}' needs a dev split to train the lm router on");
                var trainer = context.GetService<IAnswerModelTrainer>() ?? throw new ConsortException($"method '{method}': router lm needs a host that trains models, and this one does not");
                var outcomes = await DevOutcomes.MeasureAsync(models, dev.Sample(options.DevSize, context.Seed), ex => options.Apply(ex.Options), context.MaxConcurrency, ct).ConfigureAwait(false);
                fallback = outcomes.Best();
                var utility = new RoutingDataset(names, outcomes.Examples.Select(_ => new float[] { 0 }).ToArray(), outcomes.Quality, outcomes.Cost).Utility(options.CostWeight);
                var pairs = outcomes.Examples.Select((ex, i) =>
                {
                    int best = Router.ArgMax(utility[i]);
                    if (utility[i][best] <= utility[i].Where((_, m) => m != best).DefaultIfEmpty(double.NegativeInfinity).Max()) best = fallback; // a tie teaches nothing
                    return (Prompt(DevOutcomes.QueryText(ex.Messages), maxChars), " " + names[best]);
                }).ToList();
                var r = await trainer.TrainAsync(new AnswerTrainingRequest(baseSpec.Path, pairs, path, options.LmSteps, options.LearningRate ?? 1e-3, context.Seed), ct).ConfigureAwait(false);
                context.Log?.Invoke($"trained_router: lm router fine-tuned from {baseSpec.Reference} on {pairs.Count} dev examples ({string.Join(", ", names.Select(n => $"{n} {pairs.Count(x => x.Item2 == " " + n)}"))}), " +
                                    $"{r.Steps} steps, loss {r.FinalLoss:F3}, {r.Seconds:F0} s");
                WriteSidecar(path, identity, fallback);
            }
            var lm = await loader.LoadAsync(new GgufModelSpec($"{descriptor.Name}/router", path, path, new JsonObject()), ct).ConfigureAwait(false);
            IDisposable[] owned = temp is null ? [lm] : [lm, temp];
            return new ConsortModel(descriptor, new Client(descriptor, models, lm, fallback, maxChars, options), null, models, method, owned);
        }
        catch
        {
            temp?.Dispose();
            throw;
        }
    }

    private static void WriteSidecar(string path, RouterIdentity identity, int fallback)
    {
        var json = new JsonObject
        {
            ["kind"] = "lm", ["models"] = new JsonArray(identity.Models.Select(m => (JsonNode)m).ToArray()),
            ["model_ids"] = new JsonArray(identity.ModelIds.Select(m => (JsonNode)m).ToArray()),
            ["embedding"] = identity.Embedding, ["settings"] = identity.Settings, ["fallback"] = fallback,
        };
        File.WriteAllText(path + ".json", json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    // The saved router's members must be this run's; else one clear error before any work on test items.
    private static int ReadSidecar(string path, RouterIdentity expected, IReadOnlyList<string> names, string method)
    {
        var side = path + ".json";
        if (!File.Exists(side)) throw new ConfigException($"method '{method}': router_path '{path}' has no '{Path.GetFileName(side)}' beside it saying which members it routes; delete it to retrain");
        JsonObject o;
        try { o = JsonNode.Parse(File.ReadAllText(side)) as JsonObject ?? throw new JsonException("not an object"); }
        catch (JsonException e) { throw new ConfigException($"method '{method}': {side}: not a router description ({e.Message})"); }
        var found = new RouterIdentity(
            (o["models"] as JsonArray)?.Select(n => (string?)n ?? "").ToArray() ?? [], (o["model_ids"] as JsonArray)?.Select(n => (string?)n ?? "").ToArray() ?? [],
            (string?)o["embedding"] ?? "", (string?)o["settings"] ?? "");
        if ((string?)o["kind"] != "lm") throw new ConfigException($"method '{method}': router_path '{path}' holds a '{(string?)o["kind"]}' router, not an lm router");
        if (expected.Mismatch(found) is { } why) throw new ConfigException($"method '{method}': router_path '{path}' belongs to other models: {why}; delete it to retrain");
        int fallback = (int?)o["fallback"] ?? 0;
        return fallback >= 0 && fallback < names.Count ? fallback : 0;
    }

    private sealed class TempFile(string path) : IDisposable
    {
        public void Dispose()
        {
            foreach (var f in new[] { path, path + ".json" })
                try { File.Delete(f); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private sealed class Client(ModelDescriptor descriptor, IReadOnlyList<ConsortModel> models, ConsortModel lm, int fallback, int maxChars, TrainedRouterOptions settings)
        : CollaborationChatClient(descriptor)
    {
        protected override async Task<ChatResponse> AnswerAsync(IReadOnlyList<ChatMessage> messages, ChatOptions? options, CallTrace trace, CancellationToken ct)
        {
            var names = models.Select(m => m.Name).ToArray();
            int? chosen = null;
            var routing = new ChatOptions { Temperature = 0, MaxOutputTokens = 24, StopSequences = ["\n"] };
            await CallAsync(lm, [new ChatMessage(ChatRole.User, Prompt(DevOutcomes.QueryText(messages), maxChars))], routing, trace, "route", ct, r =>
            {
                chosen = ChoiceParser.Parse(r.Text, names);
                return new() { ["router"] = "lm", ["chosen"] = chosen is { } c ? names[c] : null, ["fallback"] = chosen is null };
            }).ConfigureAwait(false);
            int target = chosen ?? fallback;
            var response = await CallAsync(models[target], messages, settings.Apply(options), trace, chosen is null ? "answer (fallback)" : "answer", ct).ConfigureAwait(false);
            return AnswerFrom(response.Text, names[target]);
        }
    }
}
