namespace Consort.Training;

/// <summary>One step of a zoo build: runs after the named jobs have finished.</summary>
/// <param name="Name">Unique name (what <paramref name="After"/> lists refer to).</param>
/// <param name="After">Jobs that must finish first; names not in the run count as finished.</param>
/// <param name="Work">The work (one thread).</param>
internal sealed record BuildJob(string Name, string[] After, Action Work)
{
    /// <summary>
    /// Runs <paramref name="jobs"/> on <paramref name="slots"/> threads: whenever a slot is free it takes the first job in list
    /// order whose predecessors are done, so the list order is the priority. The first failure stops new jobs and is rethrown.
    /// </summary>
    public static void RunAll(IReadOnlyList<BuildJob> jobs, int slots, CancellationToken ct)
    {
        var known = jobs.Select(j => j.Name).ToHashSet();
        var done = new HashSet<string>();
        var pending = jobs.ToList();
        var gate = new object();
        Exception? error = null;
        void Worker()
        {
            while (true)
            {
                BuildJob? job;
                lock (gate)
                {
                    while (true)
                    {
                        if (error is not null || pending.Count == 0) return;
                        job = pending.FirstOrDefault(j => j.After.All(a => !known.Contains(a) || done.Contains(a)));
                        if (job is not null) { pending.Remove(job); break; }
                        Monitor.Wait(gate);
                    }
                }
                try
                {
                    ct.ThrowIfCancellationRequested();
                    job.Work();
                }
                catch (Exception e)
                {
                    lock (gate) { error ??= e; Monitor.PulseAll(gate); }
                    return;
                }
                lock (gate) { done.Add(job.Name); Monitor.PulseAll(gate); }
            }
        }
        var threads = Enumerable.Range(0, Math.Max(1, Math.Min(slots, jobs.Count))).Select(_ => new Thread(Worker) { IsBackground = true }).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        if (error is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(error).Throw();
    }
}
