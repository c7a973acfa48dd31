using System.Collections.Concurrent;
using System.Text;

namespace Consort.OpenAI;

/// <summary>
/// Token ids for an endpoint that only shows token <em>strings</em>: each distinct string gets an id the first time it is
/// seen, process-wide per vocabulary name, so endpoint models declaring the same vocabulary agree on ids.
/// <see cref="Encode"/> cannot know the server's tokenization, so it maps a whole text to one "piece" id; decoding
/// concatenates pieces, so <c>Decode(Encode(t)) == t</c>, and the endpoint re-tokenizes the text on every call.
/// </summary>
public sealed class StringVocabulary : ITokenizer
{
    private static readonly ConcurrentDictionary<string, StringVocabulary> Shared = new();
    private readonly ConcurrentDictionary<string, int> _ids = new(StringComparer.Ordinal);
    private readonly List<string> _strings = [];
    private readonly Lock _lock = new();

    private StringVocabulary(string name, int size)
    {
        Name = name; VocabularySize = size;
        Identity = IdentityFor(name, size);
    }

    /// <summary>
    /// The vocabulary identity of endpoint models declaring <paramref name="name"/>: equal names mean shared token ids.
    /// Same form as the config layer's description of endpoint models, so described and built descriptors agree.
    /// </summary>
    public static VocabularyIdentity IdentityFor(string name, int size) => new(size, "endpoint:" + name, "endpoint");

    /// <summary>The process-wide vocabulary called <paramref name="name"/> (created with <paramref name="size"/> on first use).</summary>
    public static StringVocabulary For(string name, int size) => Shared.GetOrAdd(name, n => new StringVocabulary(n, size));

    /// <summary>Vocabulary name.</summary>
    public string Name { get; }
    /// <summary>Identity for same-vocabulary checks (derived from the name).</summary>
    public VocabularyIdentity Identity { get; }
    /// <inheritdoc />
    public int VocabularySize { get; }
    /// <inheritdoc />
    public int? Bos => null;
    /// <inheritdoc />
    public IReadOnlySet<int> EndTokens { get; } = new HashSet<int>();
    /// <summary>Distinct strings seen so far.</summary>
    public int Count { get { lock (_lock) return _strings.Count; } }

    /// <summary>The id of <paramref name="text"/>, assigning one if new.</summary>
    public int Intern(string text)
    {
        if (_ids.TryGetValue(text, out int id)) return id;
        lock (_lock)
        {
            if (_ids.TryGetValue(text, out id)) return id;
            if (_strings.Count >= VocabularySize)
                throw new ConsortException($"endpoint vocabulary '{Name}' is full ({VocabularySize} distinct token strings); raise 'vocabulary_size'");
            id = _strings.Count;
            _strings.Add(text);
            _ids[text] = id;
            return id;
        }
    }

    /// <summary>The string of <paramref name="id"/>.</summary>
    public string this[int id]
    {
        get
        {
            lock (_lock)
                return (uint)id < (uint)_strings.Count ? _strings[id] : throw new ArgumentOutOfRangeException(nameof(id), $"token id {id} was never seen in endpoint vocabulary '{Name}'");
        }
    }

    /// <inheritdoc />
    public int[] Encode(string text, bool addBos = false) => text.Length == 0 ? [] : [Intern(text)];

    /// <inheritdoc />
    public string Decode(IReadOnlyList<int> tokens)
    {
        var sb = new StringBuilder();
        foreach (var t in tokens) sb.Append(this[t]);
        return sb.ToString();
    }
}
