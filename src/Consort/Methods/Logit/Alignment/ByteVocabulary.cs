using System.Text;

namespace Consort.Methods.Logit.Alignment;

/// <summary>
/// The vocabulary every byte-level view shares: ids 0-255 are bytes, 256 begins a sequence, 257 ends the text (the zoo's
/// byte tokenizer uses the same ids). Models with different tokenizers, seen through <see cref="ByteLevelTokenModel"/>,
/// all speak it, so same-vocabulary fusion applies to them unchanged.
/// </summary>
public sealed class ByteVocabulary : ITokenizer, ITokenPieces
{
    /// <summary>Begin-of-sequence id.</summary>
    public const int BosId = 256;
    /// <summary>End-of-text id.</summary>
    public const int EndId = 257;
    /// <summary>Number of ids.</summary>
    public const int Size = 258;

    private static readonly HashSet<int> Ends = [EndId];

    /// <summary>The one instance.</summary>
    public static ByteVocabulary Instance { get; } = new();

    /// <summary>Identity shared by every byte-level view (and so accepted by the shared-vocabulary check).</summary>
    public static VocabularyIdentity Identity { get; } = new(Size, "utf-8 bytes + bos + end", "bytes");

    private ByteVocabulary() { }

    /// <inheritdoc />
    public int VocabularySize => Size;
    /// <inheritdoc />
    public int? Bos => BosId;
    /// <inheritdoc />
    public IReadOnlySet<int> EndTokens => Ends;

    /// <inheritdoc />
    public int[] Encode(string text, bool addBos = false)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var ids = new int[bytes.Length + (addBos ? 1 : 0)];
        int o = 0;
        if (addBos) ids[o++] = BosId;
        foreach (var b in bytes) ids[o++] = b;
        return ids;
    }

    /// <inheritdoc />
    public string Decode(IReadOnlyList<int> tokens) => Encoding.UTF8.GetString(ToBytes(tokens));

    /// <inheritdoc />
    public byte[] PieceBytes(int token) => token is >= 0 and < 256 ? [(byte)token] : [];

    /// <summary>The bytes among <paramref name="tokens"/> (BOS and END are skipped).</summary>
    public static byte[] ToBytes(IReadOnlyList<int> tokens)
    {
        var bytes = new List<byte>(tokens.Count);
        foreach (var t in tokens)
        {
            if ((uint)t >= Size) throw new ConsortException($"token id {t} is outside the byte vocabulary (0..{Size - 1})");
            if (t < 256) bytes.Add((byte)t);
        }
        return [.. bytes];
    }
}
