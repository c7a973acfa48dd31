namespace Consort.Weights.Engine;

/// <summary>
/// Runs a body over block indices 0..count-1 on a fixed number of workers (the caller being one of them), each
/// with one local state made once and handed to <c>finish</c> at the end. Workers take the next block from a shared
/// counter, so uneven blocks balance out. Unlike <see cref="Parallel.For(int, int, Action{int})"/> with local
/// state, the state is never re-created mid-loop (Parallel.For's replicated workers may do so often, and the
/// states here are large scratch rows).
/// </summary>
public static class BlockLoop
{
    /// <summary>Runs <paramref name="body"/> for every block; exceptions surface as an <see cref="AggregateException"/>.</summary>
    public static void Run<T>(int count, int parallelism, Func<T> init, Action<int, T> body, Action<T>? finish = null)
    {
        int workers = Math.Max(1, Math.Min(parallelism, count));
        int next = -1;
        void Work()
        {
            var local = init();
            int i;
            while ((i = Interlocked.Increment(ref next)) < count) body(i, local);
            finish?.Invoke(local);
        }
        if (workers == 1) { Work(); return; }
        var tasks = new Task[workers - 1];
        for (int w = 0; w < tasks.Length; w++) tasks[w] = Task.Factory.StartNew(Work, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        Exception? mine = null;
        try { Work(); }
        catch (Exception e) { mine = e; Volatile.Write(ref next, count); } // stop the others early
        try { Task.WaitAll(tasks); }
        catch (AggregateException ae) when (mine is not null) { throw new AggregateException(ae.InnerExceptions.Prepend(mine)); }
        if (mine is not null) throw new AggregateException(mine);
    }
}
