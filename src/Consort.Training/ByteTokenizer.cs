using System.Text;

namespace Consort.Training;

/// <summary>
/// The zoo's byte-level tokenizer: token i (0..255) is byte i, spelled in GPT-2's byte-to-unicode mapping so llama.cpp's
/// "gpt2" tokenizer (no merges) reproduces it exactly; then <c>&lt;s&gt;</c> (256) and <c>&lt;/s&gt;</c> (257) as control tokens.
/// </summary>
public static class ByteTokenizer
{
    /// <summary>Begin-of-sequence id.</summary>
    public const int Bos = 256;
    /// <summary>End-of-sequence id.</summary>
    public const int Eos = 257;
    /// <summary>Vocabulary size.</summary>
    public const int VocabSize = 258;

    private static readonly Lazy<string[]> Texts = new(BuildTexts);

    /// <summary>Token texts in id order, as stored in tokenizer.ggml.tokens.</summary>
    public static IReadOnlyList<string> TokenTexts => Texts.Value;

    /// <summary>Token types in id order (1 normal, 3 control).</summary>
    public static int[] TokenTypes() => Enumerable.Range(0, VocabSize).Select(i => i < 256 ? 1 : 3).ToArray();

    /// <summary>UTF-8 bytes of <paramref name="text"/> as token ids.</summary>
    public static int[] Encode(string text) => Encoding.UTF8.GetBytes(text).Select(b => (int)b).ToArray();

    /// <summary>Decodes byte tokens (control tokens are skipped).</summary>
    public static string Decode(IEnumerable<int> ids) => Encoding.UTF8.GetString(ids.Where(i => i is >= 0 and < 256).Select(i => (byte)i).ToArray());

    private static string[] BuildTexts()
    {
        // GPT-2: printable bytes map to themselves, the rest to code points 256+n in byte order.
        var printable = new HashSet<int>();
        for (int b = '!'; b <= '~'; b++) printable.Add(b);
        for (int b = 0xA1; b <= 0xAC; b++) printable.Add(b);
        for (int b = 0xAE; b <= 0xFF; b++) printable.Add(b);
        var texts = new string[VocabSize];
        int n = 0;
        for (int b = 0; b < 256; b++)
            texts[b] = printable.Contains(b) ? ((char)b).ToString() : ((char)(256 + n++)).ToString();
        texts[Bos] = "<s>";
        texts[Eos] = "</s>";
        return texts;
    }
}
