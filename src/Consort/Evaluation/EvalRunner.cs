using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;

namespace Consort.Evaluation;

/// <summary>
/// Runs a model (a single model or a collaboration: the same path) over a task split with bounded concurrency,
/// streaming one result line per item to OUT/results.jsonl, then writing OUT/summary.json. Resumable: a rerun
/// into the same folder skips the items already there. Free of console code; progress goes to an <see cref="IProgress{T}"/>.
/// </summary>
public static class EvalRunner
{
    /// <summary>Results file name inside the output folder.</summary>
    public const string ResultsFileName = "results.jsonl";

    /// <summary>Evaluates <paramref name="model"/> on <paramref name="task"/>.</summary>
    /// <param name="model">The model or collaboration.</param>
    /// <param name="task">The task.</param>
    /// <param name="options">Output folder, split, limit, concurrency, error handling.</param>
    /// <param name="progress">Receives a report after each item.</param>
    /// <param name="cancellationToken">Stops the run; finished items stay in results.jsonl, so a rerun resumes.</param>
    /// <returns>The summary (also written to summary.json).</returns>
    /// <exception cref="ConsortException">The folder holds another run; the model lacks token access for likelihood scoring;
    /// with <see cref="ItemErrorMode.Abort"/>, the first failing item.</exception>
    public static async Task<EvalSummary> RunAsync(ConsortModel model, EvalTask task, EvalRunOptions options,
        IProgress<EvalProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(task);
        if (options.Concurrency < 1) throw new ConfigException($"concurrency must be at least 1, got {options.Concurrency}");
        if (task.Options.UsesLikelihood && model.Tokens is null)
            throw new ConfigException($"task '{task.Name}': scoring '{task.Options.Scoring}' needs token access, but model '{model.Name}' offers only {model.Descriptor.AccessDescription}");

        var split = options.Split ?? task.DefaultSplit;
        var selected = task.GetItems(split, options.Limit, out var skipped);
        var items = options.Shard is { } shard ? shard.Take(selected) : selected;
        var keys = items.Select(i => i.Key).ToList();
        var started = DateTimeOffset.UtcNow;
        var folder = Path.GetFullPath(options.OutputDirectory);
        var resultsPath = Path.Combine(folder, ResultsFileName);
        if (options.Fresh) Clear(folder);

        var manifest = PrepareManifest(model, task, options, split, folder, started, selected.Count);
        // Nothing is written before the first result: a run that fails before its first item leaves no
        // empty results.jsonl or run.json behind. A folder that already holds results gets its manifest now.
        bool resuming = File.Exists(resultsPath);
        if (resuming) manifest.Write(folder);
        using var results = ResultsFile.Open(resultsPath, options.RetryErrors, out var existing,
            beforeFirstWrite: () => { Directory.CreateDirectory(folder); manifest.Write(folder); });

        var wanted = new HashSet<string>(keys, StringComparer.Ordinal);
        var done = existing.Values.Where(r => wanted.Contains(r.Key)).ToList();
        int resumed = done.Count;
        var pending = items.Where(i => !existing.ContainsKey(i.Key)).ToList();
        var tally = new Tally(done.Count, done.Sum(r => r.Score), done.Count(r => r.Error is not null));
        progress?.Report(new EvalProgress(tally.Done, items.Count, tally.Mean, tally.Errors, resumed, null));
        var cache = options.Cache ?? new Consort.Caching.CacheCounters();
        EvalSummary? summary = null;

        try
        {
            using var scope = Consort.Caching.CacheCounters.Scope(cache);
            await Parallel.ForEachAsync(pending,
                new ParallelOptions { MaxDegreeOfParallelism = options.Concurrency, CancellationToken = cancellationToken },
                async (item, ct) =>
                {
                    var (record, score, failed) = await EvaluateItemAsync(model, task, item, options.OnError, options.ItemTimeout, ct).ConfigureAwait(false);
                    if (await results.AppendAsync(item.Key, record, ct).ConfigureAwait(false))
                    {
                        var snapshot = tally.Add(score, failed);
                        progress?.Report(new EvalProgress(snapshot.Done, items.Count, snapshot.Mean, snapshot.Errors, resumed, item.Key));
                    }
                }).ConfigureAwait(false);
        }
        finally
        {
            // Always leave a summary of what is on disk, also after cancellation or an abort (but no files at all
            // when nothing was ever written).
            results.Dispose();
            summary = EvalSummary.FromRecords(manifest, keys, ResultsFile.Read(resultsPath), started, DateTimeOffset.UtcNow, resumed, folder)
                with
                {
                    Skipped = skipped.Count,
                    Cache = cache.Hits + cache.Misses + cache.Skipped > 0 ? new CacheSummary(cache.Hits, cache.Misses, cache.Skipped) : null,
                };
            if (File.Exists(resultsPath)) summary.Write(folder);
        }
        return summary;
    }

    /// <summary>Removes a folder's results, manifest and summary (<c>--fresh</c>).</summary>
    public static void Clear(string folder)
    {
        foreach (var name in new[] { ResultsFileName, RunManifest.FileName, EvalSummary.FileName })
        {
            var path = Path.Combine(folder, name);
            if (File.Exists(path)) File.Delete(path);
        }
    }

    private static RunManifest PrepareManifest(ConsortModel model, EvalTask task, EvalRunOptions options, string split, string folder, DateTimeOffset now, int selected)
    {
        var manifest = new RunManifest
        {
            Model = model.Name,
            Method = options.Method ?? model.Method ?? "single",
            Task = task.Name,
            TaskType = task.Type.Name,
            Scoring = task.Options.Scoring,
            Dataset = task.Dataset.FilePath,
            Split = split,
            Limit = options.Limit ?? task.Options.Limit,
            Models = model.Members.Count > 0 ? model.Members.Select(m => m.Name).ToList() : [model.Name],
            Created = now,
            Config = options.Config?.DeepClone(),
            Definition = options.Definition?.ToJson(),
            Shard = options.Shard?.ToString(),
            Selected = selected,
            PromptStyle = task.PromptStyle,
        };
        var previous = RunManifest.Read(folder);
        if (previous is null)
        {
            if (File.Exists(Path.Combine(folder, ResultsFileName)))
                throw new ConsortException($"{folder} holds a {ResultsFileName} but no {RunManifest.FileName}; use another --out, or --fresh to start over");
        }
        else
        {
            var why = previous.Mismatch(manifest);
            if (why is not null)
                throw new ConsortException($"{folder} holds results of another run definition ({why}); rerun with --fresh to start over, or use another --out");
            manifest = manifest with { Created = previous.Created };
        }
        return manifest;
    }

    private static async Task<(JsonObject Record, double Score, bool Failed)> EvaluateItemAsync(
        ConsortModel model, EvalTask task, EvalItem item, ItemErrorMode onError, TimeSpan? timeout, CancellationToken runToken)
    {
        using var itemCts = CancellationTokenSource.CreateLinkedTokenSource(runToken);
        if (timeout is { } t) itemCts.CancelAfter(t);
        var ct = itemCts.Token;
        var sw = Stopwatch.StartNew();
        string prompt = task.Options.UsesLikelihood ? task.LikelihoodPrompt(item) : task.PromptText(item);
        var record = new JsonObject
        {
            ["key"] = item.Key,
            ["id"] = item.Fields["id"]?.DeepClone() ?? item.Key,
            ["input"] = prompt,
        };
        if (task.GroupOf(item) is { } group) record["group"] = group;
        try
        {
            if (task.Options.UsesLikelihood)
            {
                var lr = await LikelihoodScorer.ScoreAsync(model.Tokens!, prompt, item, task.Options.Scoring == "likelihood_letter", ct).ConfigureAwait(false);
                sw.Stop();
                Fill(record, lr.Score.Extracted ?? "", task.Type.Gold(item), lr.Score, lr.TokensScored, 0, model.Descriptor.CostOf(lr.TokensScored, 0), sw.Elapsed);
                record["likelihoods"] = new JsonObject(lr.Choices.Select(c =>
                    KeyValuePair.Create(c.Letter, (JsonNode?)new JsonObject { ["loglik"] = c.LogLikelihood, ["tokens"] = c.Tokens, ["bytes"] = c.Bytes })));
                return (record, lr.Score.Score, false);
            }

            // Voting methods count equal answers together with the task's own extractor.
            var chatOptions = task.AnswersFor(item).AttachTo(task.BuildChatOptions());
            var response = await model.Chat.GetResponseAsync(task.BuildMessages(item), chatOptions, ct).ConfigureAwait(false);
            sw.Stop();
            var output = response.Text ?? "";
            var score = task.Score(item, output);
            long inTok = response.Usage?.InputTokenCount ?? 0, outTok = response.Usage?.OutputTokenCount ?? 0;
            Fill(record, output, task.Type.Gold(item), score, inTok, outTok, response.GetCost() ?? model.Descriptor.CostOf(inTok, outTok), sw.Elapsed);
            record["trace"] = TraceJson(response.GetTrace());
            if (response.AdditionalProperties?.TryGetValue("consort.answered_by", out var by) == true && by?.ToString() is { Length: > 0 } who)
                record["answered_by"] = who;
            return (record, score.Score, false);
        }
        catch (OperationCanceledException) when (runToken.IsCancellationRequested)
        {
            throw; // the run is stopping: write nothing for this item, so a rerun does it
        }
        catch (Exception e) when (onError == ItemErrorMode.Record)
        {
            sw.Stop();
            Fill(record, "", GoldOrNull(task, item), new ItemScore(0, null), 0, 0, null, sw.Elapsed);
            record["error"] = Describe(e, ct, timeout);
            return (record, 0, true);
        }
        catch (Exception e) when (e is not ConsortException)
        {
            throw new ConsortException($"item {item.Key} of {task.Name}: model '{model.Name}' failed: {Describe(e, ct, timeout)}", e);
        }
    }

    private static string Describe(Exception e, CancellationToken itemToken, TimeSpan? timeout) =>
        ErrorText.Describe(e, timedOut: itemToken.IsCancellationRequested && timeout is not null, timeout);

    private static string? GoldOrNull(EvalTask task, EvalItem item)
    {
        try { return task.Type.Gold(item); } catch (Exception) { return null; }
    }

    private static void Fill(JsonObject record, string output, string? gold, ItemScore score, long inTok, long outTok, decimal? cost, TimeSpan latency)
    {
        record["output"] = output;
        record["gold"] = gold;
        record["extracted"] = score.Extracted;
        record["score"] = score.Score;
        if (score.Metrics is { Count: > 0 } m)
            record["metrics"] = new JsonObject(m.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value)));
        record["usage"] = new JsonObject { ["input_tokens"] = inTok, ["output_tokens"] = outTok };
        record["latency_ms"] = Math.Round(latency.TotalMilliseconds, 3);
        record["cost"] = cost;
    }

    private static JsonNode TraceJson(IReadOnlyList<TraceEntry> trace)
    {
        try
        {
            return JsonSerializer.SerializeToNode(trace, EvalJson.Options) ?? new JsonArray();
        }
        catch (Exception e) when (e is NotSupportedException or JsonException or InvalidOperationException)
        {
            // A trace with a value JSON cannot hold must not cost the item its result.
            return new JsonArray(trace.Select(t => (JsonNode?)new JsonObject { ["model"] = t.Model, ["role"] = t.Role, ["output"] = t.Output, ["note"] = "trace data not serializable: " + e.Message }).ToArray());
        }
    }

    private sealed class Tally(int done, double sum, int errors)
    {
        private readonly Lock _lock = new();
        private int _done = done, _errors = errors;
        private double _sum = sum;

        public int Done => _done;
        public int Errors => _errors;
        public double Mean => _done == 0 ? 0 : _sum / _done;

        public (int Done, double Mean, int Errors) Add(double score, bool failed)
        {
            lock (_lock)
            {
                _done++; _sum += score; if (failed) _errors++;
                return (_done, _sum / _done, _errors);
            }
        }
    }
}
