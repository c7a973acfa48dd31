using System.Security.Cryptography;
using System.Text;
using Consort.Decoding;

namespace Consort.Testing;

/// <summary>
/// A deterministic token model that decodes a small table-driven language: characters are tokens, and the next-token
/// distribution comes from counts in a corpus after the longest matching context (a character n-gram table with add-k
/// smoothing). Greedy decoding after a corpus line's prefix reproduces the line; after unseen text it falls back to
/// shorter contexts. Sequences fork, rewind, step in batches and score, like a real backend, so token-level methods
/// and the decode loop can be tested without model files. With <c>topK</c> it offers only top-k log-probabilities, as
/// an endpoint does.
/// </summary>
public sealed class TableTokenModel : ITokenModel
{
    private readonly Dictionary<string, Dictionary<int, int>> _table = new(StringComparer.Ordinal);
    private readonly int _order;
    private readonly int? _topK;
    private readonly double _smoothing;
    private int _activeSequences;

    /// <summary>Builds the table from <paramref name="corpus"/> (each line starts after BOS and ends with EOS).</summary>
    /// <param name="name">Model name.</param>
    /// <param name="corpus">Lines of the language.</param>
    /// <param name="order">Longest context, in characters.</param>
    /// <param name="topK">Offer only this many top log-probabilities per step (null = full logits).</param>
    /// <param name="contextSize">Most tokens per sequence.</param>
    /// <param name="alphabet">Extra characters the tokenizer knows (the corpus's are always known).</param>
    /// <param name="smoothing">Add-k smoothing of the counts.</param>
    public TableTokenModel(string name, IEnumerable<string> corpus, int order = 4, int? topK = null, int contextSize = 256, string? alphabet = null, double smoothing = 0.05)
    {
        var lines = corpus.ToList();
        var chars = lines.SelectMany(l => l).Concat(alphabet ?? " abcdefghijklmnopqrstuvwxyz0123456789?.:+=").Distinct().Order().ToArray();
        Tokenizer = new CharTokenizer(chars);
        _order = order; _topK = topK; _smoothing = smoothing;
        foreach (var line in lines)
        {
            var ids = new List<int> { CharTokenizer.BosId };
            ids.AddRange(Tokenizer.Encode(line));
            ids.Add(CharTokenizer.EosId);
            for (int i = 1; i < ids.Count; i++)
                for (int k = 0; k <= order && k <= i; k++)
                {
                    var key = Key(ids, i - k, i);
                    if (!_table.TryGetValue(key, out var next)) _table[key] = next = [];
                    next[ids[i]] = next.GetValueOrDefault(ids[i]) + 1;
                }
        }
        Descriptor = new ModelDescriptor
        {
            Name = name,
            Access = ModelAccess.Text | (topK is null ? ModelAccess.FullLogits : ModelAccess.TopKLogprobs),
            TopK = topK,
            Vocabulary = ((CharTokenizer)Tokenizer).Identity,
            ContextSize = contextSize,
            Architecture = "table",
        };
    }

    /// <inheritdoc />
    public ModelDescriptor Descriptor { get; }
    /// <inheritdoc />
    public ITokenizer Tokenizer { get; }
    /// <inheritdoc />
    public DistributionKind DistributionKind => _topK is null ? DistributionKind.FullLogits : DistributionKind.TopKLogprobs;
    /// <inheritdoc />
    public UsageMeter Usage { get; } = new();
    /// <summary>Sequences started and not yet disposed (to check that callers free them).</summary>
    public int ActiveSequences => Volatile.Read(ref _activeSequences);
    /// <summary>How many distributions were computed (one per token fed).</summary>
    public long Steps => Interlocked.Read(ref _steps);
    private long _steps;

    /// <summary>This model as a <see cref="ConsortModel"/> with chat over the plain prompt (BOS first).</summary>
    public ConsortModel AsModel(int? seed = null) => new(Descriptor, new TokenChatClient(this, new PlainPromptEncoder(Tokenizer, addBos: true), seed), this);

    private static string Key(IReadOnlyList<int> ids, int from, int to)
    {
        var sb = new StringBuilder((to - from) * 3);
        for (int i = from; i < to; i++) sb.Append(ids[i]).Append(',');
        return sb.ToString();
    }

    /// <summary>The next-token distribution after <paramref name="tokens"/>.</summary>
    public TokenDistribution Distribution(IReadOnlyList<int> tokens)
    {
        Interlocked.Increment(ref _steps);
        Dictionary<int, int>? counts = null;
        for (int k = Math.Min(_order, tokens.Count); k >= 0 && counts is null; k--)
            _table.TryGetValue(Key(tokens, tokens.Count - k, tokens.Count), out counts);
        int v = Tokenizer.VocabularySize;
        var logits = new float[v];
        for (int i = 0; i < v; i++)
            logits[i] = (float)Math.Log((counts?.GetValueOrDefault(i) ?? 0) + _smoothing);
        logits[CharTokenizer.BosId] = -30f; // BOS never follows
        if (_topK is not { } k2) return TokenDistribution.FromLogits(logits);
        var lp = new float[v];
        TokenMath.LogSoftmax(logits, lp);
        var ids = Enumerable.Range(0, v).OrderByDescending(i => lp[i]).ThenBy(i => i).Take(k2).ToArray();
        return TokenDistribution.FromTopK(v, ids, ids.Select(i => lp[i]).ToArray());
    }

    /// <inheritdoc />
    public ValueTask<ITokenSequence> StartAsync(IReadOnlyList<int> prompt, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (prompt.Count == 0) throw new ArgumentException("empty prompt");
        if (prompt.Count > Descriptor.ContextSize) throw new ConsortException($"model '{Descriptor.Name}': prompt of {prompt.Count} tokens exceeds context of {Descriptor.ContextSize}");
        Usage.Add(prompt.Count, 0, TimeSpan.Zero);
        return ValueTask.FromResult<ITokenSequence>(new Sequence(this, [.. prompt]));
    }

    /// <inheritdoc />
    public async ValueTask StepAsync(IReadOnlyList<(ITokenSequence Sequence, int Token)> steps, CancellationToken cancellationToken = default)
    {
        foreach (var (s, t) in steps) await s.AppendAsync([t], cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public ValueTask<float[]> ScoreAsync(IReadOnlyList<int> prompt, IReadOnlyList<int> continuation, CancellationToken cancellationToken = default)
    {
        var all = new List<int>(prompt);
        var result = new float[continuation.Count];
        for (int i = 0; i < continuation.Count; i++)
        {
            result[i] = Distribution(all).LogProbabilities()[continuation[i]];
            all.Add(continuation[i]);
        }
        Usage.Add(prompt.Count, continuation.Count, TimeSpan.Zero);
        return ValueTask.FromResult(result);
    }

    /// <inheritdoc />
    public void Dispose() { }

    private sealed class Sequence : ITokenSequence
    {
        private readonly TableTokenModel _model;
        private readonly List<int> _tokens;
        private bool _disposed;

        public Sequence(TableTokenModel model, List<int> tokens)
        {
            _model = model; _tokens = tokens;
            Interlocked.Increment(ref model._activeSequences);
            Next = model.Distribution(_tokens);
        }

        public ITokenModel Model => _model;
        public IReadOnlyList<int> Tokens => _tokens;
        public TokenDistribution Next { get; private set; }

        public ValueTask AppendAsync(IReadOnlyList<int> tokens, CancellationToken cancellationToken = default)
        {
            cancellationToken.ThrowIfCancellationRequested();
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_tokens.Count + tokens.Count > _model.Descriptor.ContextSize)
                throw new ConsortException($"model '{_model.Descriptor.Name}': sequence would exceed context of {_model.Descriptor.ContextSize}");
            _tokens.AddRange(tokens);
            _model.Usage.Add(0, tokens.Count, TimeSpan.Zero);
            Next = _model.Distribution(_tokens);
            return ValueTask.CompletedTask;
        }

        public ValueTask<ITokenSequence> ForkAsync(CancellationToken cancellationToken = default) =>
            ValueTask.FromResult<ITokenSequence>(new Sequence(_model, [.. _tokens]));

        public ValueTask RewindAsync(int length, CancellationToken cancellationToken = default)
        {
            if (length < 1 || length > _tokens.Count) throw new ArgumentOutOfRangeException(nameof(length));
            _tokens.RemoveRange(length, _tokens.Count - length);
            Next = _model.Distribution(_tokens);
            return ValueTask.CompletedTask;
        }

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            Interlocked.Decrement(ref _model._activeSequences);
        }
    }
}

/// <summary>Character tokenizer of <see cref="TableTokenModel"/>: 0 = EOS, 1 = BOS, then one token per character.</summary>
public sealed class CharTokenizer : ITokenizer
{
    /// <summary>End of sequence.</summary>
    public const int EosId = 0;
    /// <summary>Beginning of sequence.</summary>
    public const int BosId = 1;
    private readonly char[] _chars;
    private readonly Dictionary<char, int> _ids;

    /// <summary>A tokenizer over <paramref name="chars"/>.</summary>
    public CharTokenizer(IEnumerable<char> chars)
    {
        _chars = chars.Distinct().Order().ToArray();
        _ids = _chars.Select((c, i) => (c, i)).ToDictionary(x => x.c, x => x.i + 2);
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(new string(_chars)));
        Identity = new VocabularyIdentity(VocabularySize, Convert.ToHexStringLower(hash), "chars");
    }

    /// <summary>Identity (same characters = same vocabulary).</summary>
    public VocabularyIdentity Identity { get; }
    /// <inheritdoc />
    public int VocabularySize => _chars.Length + 2;
    /// <inheritdoc />
    public int? Bos => BosId;
    /// <inheritdoc />
    public IReadOnlySet<int> EndTokens { get; } = new HashSet<int> { EosId };

    /// <inheritdoc />
    public int[] Encode(string text, bool addBos = false)
    {
        var ids = new List<int>(text.Length + 1);
        if (addBos) ids.Add(BosId);
        foreach (var c in text)
            ids.Add(_ids.TryGetValue(c, out var id) ? id : throw new ConsortException($"table tokenizer cannot encode '{c}' (U+{(int)c:X4})"));
        return [.. ids];
    }

    /// <inheritdoc />
    public string Decode(IReadOnlyList<int> tokens)
    {
        var sb = new StringBuilder(tokens.Count);
        foreach (var t in tokens)
            if (t >= 2 && t < _chars.Length + 2) sb.Append(_chars[t - 2]);
        return sb.ToString();
    }
}
