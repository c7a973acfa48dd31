namespace Consort.Methods;

/// <summary>
/// Scores members alone on the dev split, as MoCo does to pick a summarizer, an answerer or a tie-breaker: each
/// member answers every sampled dev question with the task's own generation options, scored by the task.
/// </summary>
public static class DevSelection
{
    /// <summary>Mean dev score of each member in <paramref name="members"/> (indices into the context's models).</summary>
    /// <param name="context">The method's context (dev data, concurrency, log).</param>
    /// <param name="settings">The method's generation settings, applied over each example's options.</param>
    /// <param name="members">Members to score.</param>
    /// <param name="sample">Dev questions to use (a seeded, stratified sample; null = all).</param>
    /// <param name="purpose">What the scores are for (in the log line).</param>
    /// <param name="ct">Cancellation.</param>
    public static async Task<double[]> ScoresAsync(MethodContext context, MethodOptions settings, IReadOnlyList<int> members, int? sample, string purpose, CancellationToken ct)
    {
        if (context.Dev is not { Examples.Count: > 0 } dev) throw new ConfigException($"method needs a task with a dev split to choose {purpose}");
        var examples = sample is { } n ? dev.Sample(n, context.Seed) : dev.Examples;
        var jobs = members.SelectMany(m => examples.Select(e => (m, e))).ToList();
        var scores = await CollaborationChatClient.ParallelAsync(jobs, context.MaxConcurrency, async (job, _, token) =>
        {
            var r = await context.Models[job.m].Chat.GetResponseAsync(job.e.Messages, settings.Apply(job.e.Options), token).ConfigureAwait(false);
            return job.e.Score(r.Text);
        }, ct).ConfigureAwait(false);
        var result = members.Select((_, i) => scores.Skip(i * examples.Count).Take(examples.Count).DefaultIfEmpty(0).Average()).ToArray();
        context.Log?.Invoke($"{context.Name}: dev scores for {purpose} ({examples.Count} questions): "
            + string.Join(", ", members.Select((m, i) => $"{context.Models[m].Name} {result[i]:F3}")));
        return result;
    }

    /// <summary>The index of the best member on dev (first on ties, in config order).</summary>
    public static async Task<int> BestAsync(MethodContext context, MethodOptions settings, string purpose, CancellationToken ct, int? sample = null)
    {
        var all = Enumerable.Range(0, context.Models.Count).ToList();
        var s = await ScoresAsync(context, settings, all, sample, purpose, ct).ConfigureAwait(false);
        int best = 0;
        for (int i = 1; i < s.Length; i++) if (s[i] > s[best]) best = i;
        context.Log?.Invoke($"{context.Name}: {purpose}: {context.Models[best].Name}");
        return best;
    }

    /// <summary>
    /// Resolves a hyperparameter that names a member (validation): its index, or null when not given. An unknown name is
    /// an error listing the members.
    /// </summary>
    public static int? Member(MethodPlan plan, string key, string? name)
    {
        if (name is null) return null;
        for (int i = 0; i < plan.Members.Count; i++)
            if (string.Equals(plan.Members[i].Name, name, StringComparison.OrdinalIgnoreCase)) return i;
        throw plan.Error(key, $"= \"{Limits.ForMessage(name)}\" is not a member; members: {string.Join(", ", plan.Members.Select(m => m.Name))}");
    }

    /// <summary>The index of the member named <paramref name="name"/> among the context's models (after validation).</summary>
    public static int IndexOf(MethodContext context, string name)
    {
        for (int i = 0; i < context.Models.Count; i++)
            if (string.Equals(context.Models[i].Name, name, StringComparison.OrdinalIgnoreCase)) return i;
        throw new ConfigException($"'{name}' is not a member of {context.Name}");
    }
}
