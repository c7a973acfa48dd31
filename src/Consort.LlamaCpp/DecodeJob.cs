namespace Consort.LlamaCpp;

/// <summary>What a <see cref="DecodeJob"/> does.</summary>
internal enum DecodeJobKind
{
    /// <summary>Start a sequence from a prompt (a slot is chosen, reusing a cached prefix where one matches).</summary>
    Start,
    /// <summary>Feed tokens to a running sequence.</summary>
    Feed,
    /// <summary>Keep a prefix of a running sequence and feed its last token again.</summary>
    Rewind,
    /// <summary>Copy a running sequence into a new slot.</summary>
    Fork,
    /// <summary>Log-likelihood of a continuation in a temporary slot.</summary>
    Score,
}

/// <summary>
/// One unit of work for one sequence slot of a <see cref="LlamaBatchEngine"/>. Created by callers, advanced only by
/// the engine's leader (which alone touches the native context), and finished once: with logits, scores, an error or
/// a cancellation.
/// </summary>
internal sealed class DecodeJob
{
    public DecodeJob(DecodeJobKind kind, LlamaTokenSequence? sequence, int[] tokens)
    {
        Kind = kind; Sequence = sequence; Tokens = tokens;
    }

    public DecodeJobKind Kind { get; }
    /// <summary>The sequence worked on (the new one for Start and Fork; none for Score).</summary>
    public LlamaTokenSequence? Sequence { get; }
    /// <summary>Fork: the sequence copied.</summary>
    public LlamaTokenSequence? Source { get; init; }
    /// <summary>Tokens to feed (Start, Score: the whole input, of which a cached prefix may be skipped).</summary>
    public int[] Tokens { get; }
    /// <summary>Rewind: tokens kept.</summary>
    public int KeepLength { get; init; }
    /// <summary>Score: the continuation scored; <see cref="Tokens"/> is the prompt plus all of it but its last token.</summary>
    public int[]? Continuation { get; init; }
    /// <summary>Score: position whose logits predict the continuation's first token.</summary>
    public int ScoreFrom { get; init; }
    /// <summary>Start and Score: the slot count reserved for this job (released if it ends before taking a slot).</summary>
    public bool HoldsReservation { get; set; }

    public Ticket Ticket { get; set; } = null!;

    // ---- engine state (leader only, or under the engine's lock where noted) ----
    /// <summary>The slot worked in (-1 until set up).</summary>
    public int Slot { get; set; } = -1;
    /// <summary>True once the slot is chosen and prepared.</summary>
    public bool SetUp { get; set; }
    /// <summary>Index in <see cref="Tokens"/> of the next token to feed.</summary>
    public int Next { get; set; }
    /// <summary>Tokens in the slot before this job fed any (rollback point).</summary>
    public int Origin { get; set; }
    /// <summary>Tokens of the prompt taken from a cached prefix instead of being computed.</summary>
    public int Reused { get; set; }
    /// <summary>Logits after the last token fed (Start, Feed, Rewind).</summary>
    public float[]? Logits { get; set; }
    /// <summary>Score results.</summary>
    public float[]? Scores { get; set; }
    /// <summary>Set under the lock when the caller cancels; the leader rolls the job back at its next step.</summary>
    public bool CancelRequested { get; set; }
    /// <summary>Under the lock: finished (result, error or cancellation).</summary>
    public bool Finished { get; set; }
    public bool Cancelled { get; set; }
    public Exception? Error { get; set; }

    /// <summary>Tokens still to feed.</summary>
    public int Remaining => Tokens.Length - Next;
    /// <summary>True when the job wants the logits after its last token.</summary>
    public bool WantsLogits => Kind is DecodeJobKind.Start or DecodeJobKind.Feed or DecodeJobKind.Rewind;
}

/// <summary>
/// The jobs of one caller's call, waited for together. Its <see cref="Signal"/> completes once: <c>false</c> when
/// every job is finished, <c>true</c> when the caller is handed the lead (it then runs steps until its jobs finish).
/// </summary>
internal sealed class Ticket(DecodeJob[] jobs)
{
    public DecodeJob[] Jobs { get; } = jobs;
    public TaskCompletionSource<bool> Signal { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    /// <summary>Under the engine's lock.</summary>
    public bool Finished { get; set; }

    /// <summary>Throws the first job's error, or a cancellation, if any.</summary>
    public void ThrowIfFailed(CancellationToken cancellationToken)
    {
        foreach (var j in Jobs)
            if (j.Error is { } e) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e);
        foreach (var j in Jobs)
            if (j.Cancelled) throw new OperationCanceledException(cancellationToken.IsCancellationRequested ? cancellationToken : default);
    }
}
