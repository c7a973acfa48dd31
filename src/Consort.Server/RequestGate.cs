namespace Consort.Server;

/// <summary>
/// Bounds the requests served at once; the rest wait in a FIFO queue of bounded length instead of being refused.
/// A full queue answers 429 with <c>Retry-After</c>; a wait past the queue timeout answers 503 with <c>Retry-After</c>.
/// </summary>
internal sealed class RequestGate(int slots, int maxQueue, TimeSpan queueTimeout)
{
    private readonly SemaphoreSlim _slots = new(slots, slots);
    private int _waiting, _inFlight;

    /// <summary>Requests waiting for a slot.</summary>
    public int Waiting => Volatile.Read(ref _waiting);
    /// <summary>Requests holding a slot.</summary>
    public int InFlight => Volatile.Read(ref _inFlight);

    /// <summary>Waits for a slot; dispose the result to free it.</summary>
    public async Task<Slot> EnterAsync(CancellationToken ct)
    {
        if (!_slots.Wait(0))
        {
            if (Interlocked.Increment(ref _waiting) > maxQueue)
            {
                Interlocked.Decrement(ref _waiting);
                ServerMetrics.Refused("queue_full");
                throw new ApiError(429, $"server is busy: {slots} requests in flight and {maxQueue} waiting; retry later", "rate_limit_error", code: "queue_full")
                {
                    RetryAfterSeconds = 1,
                };
            }
            try
            {
                if (!await _slots.WaitAsync(queueTimeout, ct).ConfigureAwait(false))
                {
                    ServerMetrics.Refused("queue_timeout");
                    throw new ApiError(503, $"no slot became free within {queueTimeout.TotalSeconds:0.###} s (queue_timeout_s); retry later", "server_error", code: "queue_timeout")
                    {
                        RetryAfterSeconds = Math.Max(1, (int)Math.Ceiling(queueTimeout.TotalSeconds / 4)),
                    };
                }
            }
            finally
            {
                Interlocked.Decrement(ref _waiting);
            }
        }
        Interlocked.Increment(ref _inFlight);
        return new Slot(this);
    }

    /// <summary>A held slot.</summary>
    public sealed class Slot(RequestGate gate) : IDisposable
    {
        private int _done;

        /// <summary>Frees the slot (once).</summary>
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) != 0) return;
            Interlocked.Decrement(ref gate._inFlight);
            gate._slots.Release();
        }
    }
}
