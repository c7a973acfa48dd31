using System.Collections.Concurrent;
using System.Text;

namespace Consort.Formats.Gguf;

/// <summary>
/// Which characters a GGUF vocabulary can encode, computed from the token list the way llama.cpp's tokenizers fall
/// back. A SentencePiece ("llama") vocabulary without the 256 byte tokens (&lt;0x00&gt;..&lt;0xFF&gt;) makes llama.cpp
/// throw std::out_of_range from inside llama_tokenize for any character it has no token for, which aborts the
/// process; a byte-level BPE ("gpt2") vocabulary missing byte tokens silently drops such characters. Checking the
/// text first turns both into a clear error (or a replacement).
/// </summary>
public sealed class TokenCoverage
{
    private readonly HashSet<string> _tokens;
    private readonly bool _spm;
    private readonly bool[] _byteOk = new bool[256];
    private readonly string[] _byteLevel; // BPE: the GPT-2 byte-to-unicode text of each byte
    private readonly string[] _userDefined, _control;
    private readonly ConcurrentDictionary<int, bool> _cache = new();

    private TokenCoverage(string[] tokens, int[]? types, bool spm, bool addSpacePrefix)
    {
        _spm = spm;
        _tokens = new HashSet<string>(tokens, StringComparer.Ordinal);
        _byteLevel = spm ? [] : ByteLevelAlphabet();
        for (int b = 0; b < 256; b++)
            _byteOk[b] = spm
                ? _tokens.Contains($"<0x{b:X2}>") || (b < 0x80 && _tokens.Contains(((char)b).ToString()))
                : _tokens.Contains(_byteLevel[b]);
        CoversAll = _byteOk.All(x => x);
        AddsSpacePrefix = spm && addSpacePrefix;
        // llama.cpp splits user-defined tokens out of the text before tokenizing it (control tokens too when it
        // parses specials), so their characters never need a fallback.
        _userDefined = types is null ? [] : tokens.Where((t, i) => i < types.Length && types[i] == 4 && t.Length > 0).ToArray();
        _control = types is null ? [] : tokens.Where((t, i) => i < types.Length && types[i] is 2 or 3 && t.Length > 0).ToArray();
    }

    /// <summary>True when every byte has a token, so any text can be encoded.</summary>
    public bool CoversAll { get; }

    /// <summary>True when llama.cpp adds a leading space (SentencePiece), which must itself be encodable.</summary>
    public bool AddsSpacePrefix { get; }

    /// <summary>The coverage of a file's vocabulary; null for tokenizer families whose fallback is not modelled
    /// (bert, t5, ...: llama.cpp encodes every character there, with an unknown token if need be).</summary>
    public static TokenCoverage? From(GgufFile file) => From(file.Metadata);

    /// <summary>The coverage of a vocabulary given as GGUF metadata.</summary>
    public static TokenCoverage? From(IReadOnlyDictionary<string, GgufValue> metadata)
    {
        if (metadata.GetValueOrDefault(GgufKeys.Tokenizer.Tokens)?.Value is not string[] tokens) return null;
        var model = metadata.GetValueOrDefault(GgufKeys.Tokenizer.Model)?.Value as string;
        if (model is not ("llama" or "gpt2")) return null;
        var types = metadata.GetValueOrDefault(GgufKeys.Tokenizer.TokenType)?.Value as int[];
        bool prefix = metadata.GetValueOrDefault("tokenizer.ggml.add_space_prefix")?.Value as bool? ?? true;
        return new TokenCoverage(tokens, types, model == "llama", prefix);
    }

    /// <summary>Whether the tokenizer can encode code point <paramref name="codePoint"/> (as it appears in the input).</summary>
    public bool CanEncode(int codePoint)
    {
        if (CoversAll) return true;
        return _cache.GetOrAdd(codePoint, Compute);
    }

    private bool Compute(int cp)
    {
        // SentencePiece sees spaces as the word mark U+2581.
        if (_spm && cp == ' ') cp = 0x2581;
        string s = char.ConvertFromUtf32(cp);
        var bytes = Encoding.UTF8.GetBytes(s);
        if (_spm)
            return _tokens.Contains(s) || bytes.All(b => _byteOk[b]);
        // Byte-level BPE: each byte is a symbol of its own before merging.
        return bytes.All(b => _byteOk[b]) || _tokens.Contains(string.Concat(bytes.Select(b => _byteLevel[b])));
    }

    /// <summary>The first character of <paramref name="text"/> that cannot be encoded (its UTF-16 index and code point), or null.</summary>
    /// <param name="text">The input.</param>
    /// <param name="parseSpecial">True when llama.cpp parses control-token texts (chat templates).</param>
    public (int Index, int CodePoint)? FindUnencodable(string text, bool parseSpecial = false)
    {
        if (CoversAll || text.Length == 0) return null;
        if (AddsSpacePrefix && !CanEncode(' ')) return (0, ' ');
        foreach (var (index, cp, length) in Scan(text, parseSpecial))
            if (length > 0 && !CanEncode(cp)) return (index, cp);
        return null;
    }

    /// <summary><paramref name="text"/> with every character that cannot be encoded replaced by <paramref name="replacement"/>.</summary>
    public string Replace(string text, string replacement, bool parseSpecial = false)
    {
        if (FindUnencodable(text, parseSpecial) is null) return text;
        var sb = new StringBuilder(text.Length);
        foreach (var (index, cp, length) in Scan(text, parseSpecial))
        {
            if (length < 0) sb.Append(text, index, -length); // a token text llama.cpp splits out: kept as is
            else if (CanEncode(cp)) sb.Append(text, index, length);
            else sb.Append(replacement);
        }
        return sb.ToString();
    }

    /// <summary>The first of U+FFFD, "?" and " " that the vocabulary can encode, else "" (the character is dropped).</summary>
    public string DefaultReplacement() =>
        new[] { "\uFFFD", "?", " " }.FirstOrDefault(r => CanEncode(char.ConvertToUtf32(r, 0))) ?? "";

    /// <summary>
    /// The code points of <paramref name="text"/> with their UTF-16 index and length; the texts of tokens llama.cpp
    /// splits out before tokenizing (user-defined tokens, and control tokens when it parses specials) come as one
    /// entry with a negative length, since their characters need no fallback.
    /// </summary>
    private IEnumerable<(int Index, int CodePoint, int Length)> Scan(string text, bool parseSpecial)
    {
        var split = parseSpecial ? _userDefined.Concat(_control) : _userDefined;
        var kept = new SortedDictionary<int, int>();
        foreach (var t in split)
            for (int at = text.IndexOf(t, StringComparison.Ordinal); at >= 0; at = text.IndexOf(t, at + t.Length, StringComparison.Ordinal))
                if (!kept.TryGetValue(at, out int len) || len < t.Length) kept[at] = t.Length;
        for (int i = 0; i < text.Length;)
        {
            if (kept.TryGetValue(i, out int keep))
            {
                yield return (i, -1, -keep);
                i += keep;
                continue;
            }
            int cp = Rune.DecodeFromUtf16(text.AsSpan(i), out var rune, out int used) == System.Buffers.OperationStatus.Done ? rune.Value : 0xFFFD;
            used = Math.Max(1, used);
            yield return (i, cp, used);
            i += used;
        }
    }

    /// <summary>GPT-2's reversible byte-to-unicode map: printable Latin-1 bytes stand for themselves, the rest map to U+0100 onwards.</summary>
    private static string[] ByteLevelAlphabet()
    {
        var map = new string[256];
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            map[b] = printable ? ((char)b).ToString() : ((char)(256 + next++)).ToString();
        }
        return map;
    }
}
