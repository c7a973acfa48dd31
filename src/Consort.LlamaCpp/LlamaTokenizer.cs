using System.Text;
using LLama;
using LLama.Native;

namespace Consort.LlamaCpp;

/// <summary>llama.cpp's tokenizer for a loaded model.</summary>
public sealed class LlamaTokenizer : ITokenizer, ITokenPieces
{
    private readonly LLamaWeights _weights;
    private readonly object _gate = new();

    internal LlamaTokenizer(LLamaWeights weights)
    {
        _weights = weights;
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
        LLamaToken[] tokens;
        lock (_gate) tokens = _weights.Tokenize(text, addBos && Bos is not null, special, Encoding.UTF8);
        var ids = new int[tokens.Length];
        for (int i = 0; i < ids.Length; i++) ids[i] = (int)tokens[i];
        return ids;
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
