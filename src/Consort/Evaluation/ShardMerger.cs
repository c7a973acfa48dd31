namespace Consort.Evaluation;

/// <summary>
/// Joins the output folders of a sharded run (<c>consort run --shard i/n</c> on several processes or machines) into
/// one folder per run, whose summary equals that of one unsharded run: every shard of a run must have the same
/// definition digest and shard count, and together the shards must cover 1..n exactly once.
/// </summary>
public static class ShardMerger
{
    /// <summary>Merges <paramref name="shardFolders"/> (each holding run folders with run.json) into <paramref name="outDir"/>.</summary>
    /// <returns>Each joined run's name and summary, in the first shard's folder order.</returns>
    /// <exception cref="ConsortException">A missing, repeated or mismatched shard (named).</exception>
    public static IReadOnlyList<(string Name, EvalSummary Summary)> Merge(IReadOnlyList<string> shardFolders, string outDir)
    {
        if (shardFolders.Count == 0) throw new ConfigException("--merge-shards needs the shard folders");
        var byRun = new Dictionary<string, List<(string Folder, RunManifest Manifest)>>(StringComparer.Ordinal);
        var order = new List<string>();
        foreach (var dir in shardFolders)
        {
            var full = Path.GetFullPath(dir);
            if (!Directory.Exists(full)) throw new ConsortException($"--merge-shards {dir}: folder not found");
            var runs = Directory.GetDirectories(full).Where(d => File.Exists(Path.Combine(d, RunManifest.FileName))).Order(StringComparer.Ordinal).ToList();
            if (runs.Count == 0) throw new ConsortException($"--merge-shards {dir}: no run folders (with {RunManifest.FileName}) inside");
            foreach (var run in runs)
            {
                var name = Path.GetFileName(run);
                var manifest = RunManifest.Read(run)!;
                if (manifest.Shard is null) throw new ConsortException($"--merge-shards {run}: not a shard (run without --shard)");
                if (!byRun.TryGetValue(name, out var list)) { byRun[name] = list = []; order.Add(name); }
                list.Add((run, manifest));
            }
        }
        var merged = new List<(string, EvalSummary)>();
        foreach (var name in order)
        {
            var shards = byRun[name];
            var parsed = shards.Select(s => (s.Folder, s.Manifest, Spec: ShardSpec.Parse(s.Manifest.Shard!))).ToList();
            int n = parsed[0].Spec.Count;
            var digest = Digest(parsed[0].Manifest);
            foreach (var s in parsed)
            {
                if (s.Spec.Count != n) throw new ConsortException($"run '{name}': {s.Folder} is shard {s.Spec} but {parsed[0].Folder} is of {n} shards");
                if (Digest(s.Manifest) != digest) throw new ConsortException($"run '{name}': {s.Folder} holds another run definition than {parsed[0].Folder}; shards must come from the same config and options");
                if (s.Manifest.Selected != parsed[0].Manifest.Selected) throw new ConsortException($"run '{name}': {s.Folder} selected {s.Manifest.Selected} items but {parsed[0].Folder} {parsed[0].Manifest.Selected} (another --limit?)");
            }
            var dup = parsed.GroupBy(s => s.Spec.Index).FirstOrDefault(g => g.Count() > 1);
            if (dup is not null) throw new ConsortException($"run '{name}': shard {dup.Key}/{n} given twice ({string.Join(", ", dup.Select(d => d.Folder))})");
            var missing = Enumerable.Range(1, n).Where(i => parsed.All(s => s.Spec.Index != i)).ToList();
            if (missing.Count > 0) throw new ConsortException($"run '{name}': shard(s) {string.Join(", ", missing.Select(i => $"{i}/{n}"))} missing");

            var records = parsed.OrderBy(s => s.Spec.Index).SelectMany(s => ResultsFile.Read(Path.Combine(s.Folder, EvalRunner.ResultsFileName))).ToList();
            var target = Path.Combine(outDir, name);
            Directory.CreateDirectory(target);
            EvalRunner.Clear(target);
            var manifest = parsed[0].Manifest with { Shard = null, Created = parsed.Min(s => s.Manifest.Created) };
            using (var file = ResultsFile.Open(Path.Combine(target, EvalRunner.ResultsFileName), dropErrors: false, out _))
                foreach (var r in records)
                    file.AppendAsync(r.Key, (System.Text.Json.Nodes.JsonObject)r.Json.DeepClone()).GetAwaiter().GetResult();
            manifest.Write(target);
            var summaries = parsed.Select(s => EvalSummary.Read(s.Folder)).ToList();
            var keys = records.Select(r => r.Key).Distinct().ToList();
            var summary = EvalSummary.FromRecords(manifest, keys, records, summaries.Min(s => s.Started), summaries.Max(s => s.Finished), 0, target) with
            {
                Total = manifest.Selected ?? keys.Count,
                Skipped = summaries[0].Skipped,
                Cache = summaries.All(s => s.Cache is null) ? null
                    : new CacheSummary(summaries.Sum(s => s.Cache?.Hits ?? 0), summaries.Sum(s => s.Cache?.Misses ?? 0), summaries.Sum(s => s.Cache?.Skipped ?? 0)),
            };
            summary.Write(target);
            merged.Add((name, summary));
        }
        return merged;
    }

    private static string Digest(RunManifest m) => m.Definition?["digest"]?.GetValue<string>() ?? $"{m.Model}|{m.Method}|{m.Task}|{m.Split}|{string.Join(",", m.Models)}";
}
