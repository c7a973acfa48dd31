namespace Consort;

/// <summary>
/// A tokenizer that can give the raw bytes each token stands for (for byte-fallback tokens a single byte that may be
/// part of a UTF-8 character, which <see cref="ITokenizer.Decode"/> cannot show on its own). Cross-tokenizer alignment
/// uses it to map tokens of different vocabularies onto one byte stream.
/// </summary>
public interface ITokenPieces
{
    /// <summary>The bytes token <paramref name="token"/> adds to the text (empty for control tokens such as BOS/EOS).</summary>
    byte[] PieceBytes(int token);
}
