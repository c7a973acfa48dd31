using System.Runtime.CompilerServices;
using System.Text;

namespace Consort.Methods.Logit.Alignment;

/// <summary>
/// The byte strings of a vocabulary, sorted, so that "every token whose bytes start with r" is one contiguous range
/// found by binary search, and a range splits into contiguous sub-ranges by the next byte. Control tokens (empty pieces)
/// are left out; end-of-generation tokens are kept apart as the end of the text.
/// </summary>
public sealed class TokenPieceTable
{
    private static readonly ConditionalWeakTable<ITokenizer, TokenPieceTable> Cache = new();
    private readonly byte[][] _pieces;    // by token id
    private readonly int[] _sorted;       // token ids with non-empty pieces, in byte order
    private readonly byte[][] _sortedPieces;

    private TokenPieceTable(ITokenizer tokenizer)
    {
        int v = tokenizer.VocabularySize;
        _pieces = new byte[v][];
        var raw = tokenizer as ITokenPieces;
        for (int t = 0; t < v; t++)
        {
            if (tokenizer.EndTokens.Contains(t) || t == tokenizer.Bos) { _pieces[t] = []; continue; }
            if (raw is not null) _pieces[t] = raw.PieceBytes(t);
            else
            {
                // Without raw bytes a token that decodes to a replacement character is a lone byte of a UTF-8 sequence;
                // it cannot be placed, so it is left out (text made of whole characters never needs it).
                var s = tokenizer.Decode([t]);
                _pieces[t] = s.Contains('\uFFFD') ? [] : Encoding.UTF8.GetBytes(s);
            }
        }
        _sorted = Enumerable.Range(0, v).Where(t => _pieces[t].Length > 0).ToArray();
        Array.Sort(_sorted, (a, b) => Compare(_pieces[a], _pieces[b]) is var c && c != 0 ? c : a.CompareTo(b));
        _sortedPieces = _sorted.Select(t => _pieces[t]).ToArray();
        EndTokens = tokenizer.EndTokens.Where(t => (uint)t < (uint)v).ToArray();
        // SentencePiece-style tokenizers put a space in front of the text; the byte stream they model starts with it.
        var probe = tokenizer.Encode("x", addBos: false);
        SpacePrefix = probe.Length > 0 && _pieces[probe[0]] is [(byte)' ', ..];
    }

    /// <summary>The table of <paramref name="tokenizer"/> (built once per tokenizer instance).</summary>
    public static TokenPieceTable For(ITokenizer tokenizer) => Cache.GetValue(tokenizer, t => new TokenPieceTable(t));

    /// <summary>Tokens with a non-empty piece.</summary>
    public int Count => _sorted.Length;
    /// <summary>Vocabulary size of the tokenizer.</summary>
    public int VocabularySize => _pieces.Length;
    /// <summary>Token id at sorted position <paramref name="index"/>.</summary>
    public int TokenAt(int index) => _sorted[index];
    /// <summary>Piece at sorted position <paramref name="index"/>.</summary>
    public byte[] PieceAt(int index) => _sortedPieces[index];
    /// <summary>The bytes of token <paramref name="token"/> (empty for control tokens).</summary>
    public byte[] Piece(int token) => _pieces[token];
    /// <summary>End-of-generation tokens.</summary>
    public IReadOnlyList<int> EndTokens { get; }
    /// <summary>True when the tokenizer prefixes text with a space (SentencePiece's add_space_prefix).</summary>
    public bool SpacePrefix { get; }

    /// <summary>True when some token's piece starts with <paramref name="b"/>.</summary>
    public bool CanStartWith(byte b)
    {
        var (lo, hi) = Narrow(0, Count, 0, b);
        return lo < hi;
    }

    /// <summary>The sub-range of [<paramref name="lo"/>, <paramref name="hi"/>) whose pieces have byte <paramref name="b"/> at
    /// <paramref name="depth"/> (the range must hold pieces sharing their first <paramref name="depth"/> bytes).</summary>
    public (int Lo, int Hi) Narrow(int lo, int hi, int depth, byte b)
    {
        // Pieces of exactly `depth` bytes sort first; the rest are ordered by their byte at `depth`.
        int l = lo, h = hi;
        while (l < h)
        {
            int m = (l + h) >>> 1;
            if (ByteAt(m, depth) < b) l = m + 1; else h = m;
        }
        int start = l;
        h = hi;
        while (l < h)
        {
            int m = (l + h) >>> 1;
            if (ByteAt(m, depth) <= b) l = m + 1; else h = m;
        }
        return (start, l);
    }

    /// <summary>The range of tokens whose pieces start with <paramref name="prefix"/>.</summary>
    public (int Lo, int Hi) PrefixRange(ReadOnlySpan<byte> prefix)
    {
        int lo = 0, hi = Count;
        for (int d = 0; d < prefix.Length && lo < hi; d++) (lo, hi) = Narrow(lo, hi, d, prefix[d]);
        return (lo, hi);
    }

    // -1 for a piece that ends before `depth`, so such pieces sort first.
    private int ByteAt(int index, int depth)
    {
        var p = _sortedPieces[index];
        return depth < p.Length ? p[depth] : -1;
    }

    private static int Compare(byte[] a, byte[] b) => a.AsSpan().SequenceCompareTo(b);
}
