using System.Text;
using Consort.Decoding;
using Microsoft.Extensions.AI;

namespace Consort.Methods;

/// <summary>A stretch of text a member drafted on a fork of its track (its track is unchanged).</summary>
/// <param name="Text">The drafted text.</param>
/// <param name="Tokens">Its tokens (the member's own).</param>
/// <param name="Ended">True when the member ended its answer (an end token) instead of reaching the draft's limit.</param>
public sealed record Draft(string Text, IReadOnlyList<int> Tokens, bool Ended);

/// <summary>
/// One member's side of a token-level collaboration: its own sequence (KV cache) over its own encoding of the
/// prompt, to which it appends the tokens it writes and, lazily, the text the other members wrote (re-tokenized with
/// its own tokenizer, when it next needs a distribution). Nothing is re-processed: a step costs only the tokens added
/// since the last one, unlike re-encoding the whole prefix at every step. Works across tokenizers.
/// </summary>
public sealed class TokenTrack : IDisposable
{
    private const int TailTokens = 8;
    private readonly ITokenSequence _sequence;
    private readonly List<int> _tail = [];
    private readonly StringBuilder _unread = new();
    private readonly List<int> _unreadIds = [];
    private readonly int _limit;

    private TokenTrack(ConsortModel member, ITokenModel model, ITokenSequence sequence, int promptTokens, int limit)
    {
        Member = member; Model = model; _sequence = sequence; PromptTokens = promptTokens; _limit = limit;
    }

    /// <summary>The member.</summary>
    public ConsortModel Member { get; }
    /// <summary>Its token access.</summary>
    public ITokenModel Model { get; }
    /// <summary>Its tokenizer.</summary>
    public ITokenizer Tokenizer => Model.Tokenizer;
    /// <summary>Its name.</summary>
    public string Name => Member.Name;
    /// <summary>Prompt length in this member's tokens.</summary>
    public int PromptTokens { get; }
    /// <summary>Tokens this member wrote into the answer.</summary>
    public int Written { get; private set; }
    /// <summary>Tokens it sampled in all (the answer's, drafts and look-aheads).</summary>
    public int Generated { get; private set; }
    /// <summary>Tokens it read from the others' text.</summary>
    public int ReadTokens { get; private set; }
    /// <summary>True when its context filled up (the answer must end).</summary>
    public bool Full { get; private set; }

    /// <summary>A member's prompt tokens: its chat template's encoding, else the plain prompt (BOS first where it has one).</summary>
    public static int[] EncodePrompt(ConsortModel member, IEnumerable<ChatMessage> messages)
    {
        var model = member.Tokens ?? throw new ConsortException($"model '{member.Name}' offers no token access");
        var encoder = member.Chat.GetService(typeof(IChatPromptEncoder)) as IChatPromptEncoder
                      ?? new PlainPromptEncoder(model.Tokenizer, model.Tokenizer.Bos is not null);
        return encoder.EncodePrompt(messages);
    }

    /// <summary>Starts a track after <paramref name="messages"/> (and <paramref name="prefix"/>, text already answered).</summary>
    public static async Task<TokenTrack> StartAsync(ConsortModel member, IReadOnlyList<ChatMessage> messages, string method, CancellationToken cancellationToken, string? prefix = null)
    {
        var model = member.Tokens ?? throw new ConsortException($"method '{method}' needs token access from model '{member.Name}', which offers only {member.Descriptor.AccessDescription}");
        var prompt = EncodePrompt(member, messages);
        if (!string.IsNullOrEmpty(prefix)) prompt = [.. prompt, .. ContinuationTokens(model.Tokenizer, prefix)];
        if (prompt.Length == 0) prompt = model.Tokenizer.Bos is int bos ? [bos] : throw new ConsortException($"method '{method}': empty prompt for model '{member.Name}'");
        int limit = model.Descriptor.ContextSize > 0 ? model.Descriptor.ContextSize : int.MaxValue;
        if (prompt.Length >= limit)
            throw new ConsortException($"method '{method}': the prompt ({prompt.Length} tokens) does not fit model '{member.Name}''s context of {limit} tokens");
        var sequence = await model.StartAsync(prompt, cancellationToken).ConfigureAwait(false);
        return new TokenTrack(member, model, sequence, prompt.Length, limit);
    }

    /// <summary>
    /// Tokens that continue a sequence with <paramref name="text"/>. SentencePiece tokenizers put a space before the
    /// text they encode; behind a newline they do not, so the newline's tokens are dropped from that encoding.
    /// </summary>
    public static int[] ContinuationTokens(ITokenizer tokenizer, string text)
    {
        if (text.Length == 0) return [];
        var direct = tokenizer.Encode(text, addBos: false);
        if (direct.Length == 0 || tokenizer.Decode(direct) == text) return direct;
        var behind = tokenizer.Encode("\n" + text, addBos: false);
        for (int k = 1; k <= Math.Min(3, behind.Length - 1); k++)
            if (tokenizer.Decode(behind[k..]) == text) return behind[k..];
        return direct;
    }

    /// <summary>The next-token distribution, after reading what the others wrote since this track last looked.</summary>
    public async ValueTask<TokenDistribution> NextAsync(CancellationToken cancellationToken)
    {
        await CatchUpAsync(cancellationToken).ConfigureAwait(false);
        return _sequence.Next;
    }

    /// <summary>Probability of the most likely next token (call after <see cref="NextAsync"/>).</summary>
    public static double TopProbability(TokenDistribution d) => Math.Exp(d.LogProbabilities()[d.ArgMax()]);

    /// <summary>True for this member's end tokens.</summary>
    public bool IsEnd(int token) => Tokenizer.EndTokens.Contains(token);

    /// <summary>The text <paramref name="token"/> adds after what this track holds.</summary>
    public string PieceOf(int token) => Piece(_tail, token);

    /// <summary>Counts a sampled token that the method looked at without writing it (e.g. a nudging model's proposal).</summary>
    public void CountSampled() => Generated++;

    /// <summary>Appends this member's own token to its sequence (the others read its text through a <see cref="TextWeave"/>).</summary>
    public async ValueTask WriteAsync(int token, CancellationToken cancellationToken)
    {
        await CatchUpAsync(cancellationToken).ConfigureAwait(false);
        Written++; Generated++;
        Push(_tail, token);
        if (_sequence.Tokens.Count + 1 > _limit) { Full = true; return; }
        await _sequence.AppendAsync([token], cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Queues text the others wrote; it is tokenized and appended when this track next needs a distribution.</summary>
    public void Read(string text) => _unread.Append(text);

    /// <summary>Queues a token another member of the same vocabulary wrote (appended as it is, not re-tokenized).</summary>
    public void ReadToken(int token)
    {
        if (_unread.Length > 0) { _unreadIds.AddRange(ContinuationTokens(Tokenizer, _unread.ToString())); _unread.Clear(); }
        _unreadIds.Add(token);
    }

    private async ValueTask CatchUpAsync(CancellationToken cancellationToken)
    {
        if (_unread.Length == 0 && _unreadIds.Count == 0) return;
        int[] ids = [.. _unreadIds, .. ContinuationTokens(Tokenizer, _unread.ToString())];
        _unread.Clear();
        _unreadIds.Clear();
        int room = _limit - _sequence.Tokens.Count;
        if (ids.Length > room) { ids = ids[..Math.Max(0, room)]; Full = true; }
        if (ids.Length == 0) return;
        ReadTokens += ids.Length;
        foreach (var t in ids) Push(_tail, t);
        await _sequence.AppendAsync(ids, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// A separate track that continues this one with <paramref name="text"/> (a fork: the prefix is not recomputed); the
    /// caller disposes it. For look-aheads such as a judge's question or a rollout.
    /// </summary>
    public async Task<TokenTrack> BranchAsync(string text, CancellationToken cancellationToken)
    {
        await CatchUpAsync(cancellationToken).ConfigureAwait(false);
        var fork = await _sequence.ForkAsync(cancellationToken).ConfigureAwait(false);
        var branch = new TokenTrack(Member, Model, fork, PromptTokens, _limit);
        branch._tail.AddRange(_tail);
        branch.Read(text);
        return branch;
    }

    /// <summary>
    /// Drafts up to <paramref name="maxTokens"/> tokens on a fork of this track (the track itself is unchanged), stopping at
    /// an end token, or before a piece when <paramref name="stopBefore"/>(text so far, piece) says so (e.g. at the next word).
    /// </summary>
    public async Task<Draft> DraftAsync(int maxTokens, TokenSampler sampler, Func<string, string, bool>? stopBefore, CancellationToken cancellationToken)
    {
        await CatchUpAsync(cancellationToken).ConfigureAwait(false);
        using var fork = await _sequence.ForkAsync(cancellationToken).ConfigureAwait(false);
        var tail = new List<int>(_tail);
        var tokens = new List<int>();
        string text = "";
        bool ended = false;
        while (tokens.Count < maxTokens)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int t = sampler.Sample(fork.Next);
            Generated++;
            if (IsEnd(t)) { ended = true; break; }
            string piece = Piece(tail, t);
            if (stopBefore?.Invoke(text, piece) == true) break;
            tokens.Add(t); text += piece; Push(tail, t);
            if (tokens.Count >= maxTokens || fork.Tokens.Count + 1 > _limit) break;
            await fork.AppendAsync([t], cancellationToken).ConfigureAwait(false);
        }
        // Decoding the whole draft at once mends characters that span tokens (pieces of a multi-byte character).
        return new Draft(tokens.Count == 0 ? "" : Suffix(Tokenizer.Decode(_tail), Tokenizer.Decode([.. _tail, .. tokens])), tokens, ended);
    }

    /// <summary>Stops a draft before the first piece that starts a new word (after at least one piece).</summary>
    public static bool AtNextWord(string textSoFar, string piece) => textSoFar.Length > 0 && piece.Length > 0 && (piece[0] == ' ' || piece[0] == '\n');

    /// <summary>A trace entry for this member's part: its prompt and read tokens in, its sampled tokens out.</summary>
    public TraceEntry ToTraceEntry(string role, string? input, string output, TimeSpan latency, Dictionary<string, object?>? data = null)
    {
        long inTokens = PromptTokens + ReadTokens;
        return new TraceEntry
        {
            Model = Name, Role = role, Input = input, Output = output, InputTokens = inTokens, OutputTokens = Generated,
            LatencyMs = latency.TotalMilliseconds, Cost = Member.Descriptor.CostOf(inTokens, Generated), Data = data,
        };
    }

    private string Piece(List<int> tail, int token) => Suffix(Tokenizer.Decode(tail), Tokenizer.Decode([.. tail, token]));

    private static void Push(List<int> tail, int token)
    {
        tail.Add(token);
        if (tail.Count > TailTokens) tail.RemoveAt(0);
    }

    // What "after" adds to "before" (past their common prefix when a character completed across tokens).
    private static string Suffix(string before, string after)
    {
        if (after.StartsWith(before, StringComparison.Ordinal)) return after[before.Length..];
        int i = 0;
        while (i < before.Length && i < after.Length && before[i] == after[i]) i++;
        return after[i..];
    }

    /// <summary>Frees the sequence.</summary>
    public void Dispose() => _sequence.Dispose();
}
