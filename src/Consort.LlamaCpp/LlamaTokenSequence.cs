namespace Consort.LlamaCpp;

/// <summary>One slot of a <see cref="LlamaBatchEngine"/>: a llama.cpp sequence id with its own KV stream, and the
/// tokens whose keys and values that stream holds (a prefix cache once the slot is free again).</summary>
internal sealed class SlotState(int index)
{
    public int Index { get; } = index;
    /// <summary>Tokens held in the stream, in position order. A slot taken by a new owner gets a new list, so a
    /// disposed sequence's list never changes under it.</summary>
    public List<int> Tokens { get; set; } = [];
    /// <summary>The sequence or score job using the slot; null when free.</summary>
    public object? Owner { get; set; }
}

/// <summary>One llama.cpp sequence of a <see cref="LlamaTokenModel"/>. Its calls go through the model's
/// <see cref="LlamaBatchEngine"/>, which decodes them together with every other sequence's.</summary>
internal sealed class LlamaTokenSequence : ITokenSequence
{
    private TokenDistribution? _next;

    public LlamaTokenSequence(LlamaTokenModel owner) => Owner = owner;

    public LlamaTokenModel Owner { get; }
    /// <summary>The slot (set by the engine when the sequence starts).</summary>
    internal SlotState? State { get; set; }
    /// <summary>This sequence's tokens: the slot's list while it owns the slot, kept after it is disposed.</summary>
    internal List<int> TokenList { get; set; } = [];
    /// <summary>The job running for this sequence, if any (under the engine's lock).</summary>
    internal DecodeJob? Pending { get; set; }
    /// <summary>Under the engine's lock.</summary>
    internal bool Disposed { get; set; }
    /// <summary>When its last single-token step finished (timestamp; 0: none yet). Under the engine's lock.</summary>
    internal long SteppedAt { get; set; }
    /// <summary>How long the caller usually takes to come back for the next step (seconds, moving average; 0: not
    /// known). A caller that steps another model in between (a fused member) is away for that model's step.</summary>
    internal double AwaySeconds { get; set; }

    public int Slot => State?.Index ?? -1;
    public ITokenModel Model => Owner;
    public IReadOnlyList<int> Tokens => TokenList;
    public TokenDistribution Next => _next ?? throw new InvalidOperationException("sequence has no distribution yet");

    internal void SetNext(float[] logits) => _next = TokenDistribution.FromLogits(logits);

    public ValueTask AppendAsync(IReadOnlyList<int> tokens, CancellationToken cancellationToken = default) =>
        Owner.AppendAsync(this, tokens, cancellationToken);

    public ValueTask<ITokenSequence> ForkAsync(CancellationToken cancellationToken = default) => Owner.ForkAsync(this, cancellationToken);

    public ValueTask RewindAsync(int length, CancellationToken cancellationToken = default) => Owner.RewindAsync(this, length, cancellationToken);

    public void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Disposed, this);

    /// <summary>Frees the slot at once; its tokens stay cached for prompts that share a prefix with them.</summary>
    public void Dispose() => Owner.Engine.Release(this);
}
