using System.Text;
using Consort.Formats.Gguf;
using LLama;
using LLama.Native;

namespace Consort.LlamaCpp;

/// <summary>
/// llama.cpp's tokenizer for a loaded model. Text is checked against the vocabulary's coverage first: llama.cpp
/// aborts the process (std::out_of_range from inside llama_tokenize) on a character a SentencePiece vocabulary
/// without byte-fallback tokens cannot encode, so such input is an error naming the model and the character,
/// or is replaced when the model entry says <c>"unencodable": "replace"</c>.
/// </summary>
public sealed class LlamaTokenizer : ITokenizer, ITokenPieces
{
    private readonly LLamaWeights _weights;
    private readonly object _gate = new();
    private readonly string _name;
    private readonly TokenCoverage? _coverage;
    private readonly UnencodableMode _unencodable;
    private readonly string _replacement;

    internal LlamaTokenizer(LLamaWeights weights, string name = "model", TokenCoverage? coverage = null, UnencodableMode unencodable = UnencodableMode.Error)
    {
        _weights = weights;
        _name = name;
        _coverage = coverage is { CoversAll: false } ? coverage : null;
        _unencodable = unencodable;
        _replacement = _coverage?.DefaultReplacement() ?? "";
        var vocab = weights.NativeHandle.Vocab;
        VocabularySize = vocab.Count;
        Bos = vocab.BOS is { } b ? (int)b : null;
        AddsBos = vocab.ShouldAddBOS;
        var ends = new HashSet<int>();
        if (vocab.EOS is { } eos) ends.Add((int)eos);
        if (vocab.EOT is { } eot) ends.Add((int)eot);
        for (int i = 0; i < VocabularySize; i++)
            if (((LLamaToken)i).IsEndOfGeneration(vocab)) ends.Add(i);
        EndTokens = ends;
    }

    /// <inheritdoc />
    public int VocabularySize { get; }
    /// <inheritdoc />
    public int? Bos { get; }
    /// <summary>True when the model expects a BOS token at the start of a prompt.</summary>
    public bool AddsBos { get; }
    /// <inheritdoc />
    public IReadOnlySet<int> EndTokens { get; }

    /// <inheritdoc />
    public int[] Encode(string text, bool addBos = false) => Encode(text, addBos, special: false);

    /// <summary>Tokenizes; <paramref name="special"/> parses control-token text (for chat templates).</summary>
    public int[] Encode(string text, bool addBos, bool special)
    {
        ArgumentNullException.ThrowIfNull(text);
        text = Encodable(text, special);
        LLamaToken[] tokens;
        lock (_gate) tokens = _weights.Tokenize(text, addBos && Bos is not null, special, Encoding.UTF8);
        var ids = new int[tokens.Length];
        for (int i = 0; i < ids.Length; i++) ids[i] = (int)tokens[i];
        return ids;
    }

    /// <summary>What to do with unencodable characters: null when the vocabulary covers every byte.</summary>
    public UnencodableMode? UnencodableHandling => _coverage is null ? null : _unencodable;

    /// <summary>The text as it may reach llama.cpp: unchanged, with unencodable characters replaced, or an error.</summary>
    /// <exception cref="ConsortException">A character the vocabulary cannot encode (mode <see cref="UnencodableMode.Error"/>).</exception>
    public string Encodable(string text, bool special = false)
    {
        if (_coverage?.FindUnencodable(text, special) is not { } bad) return text;
        if (_unencodable == UnencodableMode.Replace) return _coverage.Replace(text, _replacement, special);
        string at = bad.Index == 0 && bad.CodePoint == ' ' && _coverage.AddsSpacePrefix ? "as the leading space llama.cpp adds" : $"at character {bad.Index} of the input";
        throw new ConsortException($"model '{_name}' cannot encode {MessageText.Character(bad.CodePoint)} {at}: its vocabulary has no token for it " +
                                   "and no byte-fallback tokens (llama.cpp would abort); set \"unencodable\": \"replace\" in the model entry to replace such characters" +
                                   (_replacement.Length > 0 ? $" with {MessageText.Quote(_replacement)}" : " (they are then dropped)"));
    }

    /// <inheritdoc />
    public byte[] PieceBytes(int token)
    {
        if ((uint)token >= (uint)VocabularySize) throw new ConsortException($"token id {token} is outside the vocabulary (0..{VocabularySize - 1})");
        Span<byte> buffer = stackalloc byte[256];
        lock (_gate)
        {
            var handle = _weights.NativeHandle;
            int n = (int)handle.TokenToSpan((LLamaToken)token, buffer);
            if (n <= buffer.Length) return buffer[..n].ToArray();
            var big = new byte[n];
            handle.TokenToSpan((LLamaToken)token, big);
            return big;
        }
    }

    /// <inheritdoc />
    public string Decode(IReadOnlyList<int> tokens)
    {
        lock (_gate)
        {
            var decoder = new StreamingTokenDecoder(Encoding.UTF8, _weights);
            foreach (var t in tokens)
            {
                if ((uint)t >= (uint)VocabularySize) throw new ConsortException($"token id {t} is outside the vocabulary (0..{VocabularySize - 1})");
                decoder.Add((LLamaToken)t);
            }
            return decoder.Read();
        }
    }
}
