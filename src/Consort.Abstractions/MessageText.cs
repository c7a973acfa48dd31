using System.Globalization;
using System.Text;

namespace Consort;

/// <summary>
/// Makes strings that come from files (tensor names, keys, token texts, config values) safe to put in an error
/// message: control characters and other invisible ones are escaped, and long strings are cut, so a corrupt name
/// of a megabyte with NUL bytes and newlines stays one readable line.
/// </summary>
public static class MessageText
{
    /// <summary>Default cut length.</summary>
    public const int DefaultMax = 200;

    /// <summary>The string escaped (\n, \t, \0, \xNN, \uNNNN for other invisible characters) and cut at
    /// <paramref name="max"/> characters with a note of its whole length.</summary>
    public static string Escape(string? s, int max = DefaultMax)
    {
        if (s is null) return "(null)";
        var sb = new StringBuilder(Math.Min(s.Length, max) + 16);
        int i = 0;
        for (; i < s.Length && sb.Length < max; i++)
        {
            char c = s[i];
            switch (c)
            {
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\0': sb.Append("\\0"); break;
                case '\\': sb.Append('\\'); break;
                default:
                    if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
                    {
                        sb.Append(c).Append(s[++i]);
                    }
                    else if (c < 0x20 || c == 0x7F) sb.Append("\\x").Append(((int)c).ToString("X2", CultureInfo.InvariantCulture));
                    else if (char.IsSurrogate(c) || IsInvisible(c)) sb.Append("\\u").Append(((int)c).ToString("X4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        if (i < s.Length) sb.Append($"... ({s.Length.ToString(CultureInfo.InvariantCulture)} characters)");
        return sb.ToString();
    }

    /// <summary><see cref="Escape"/> in single quotes.</summary>
    public static string Quote(string? s, int max = DefaultMax) => "'" + Escape(s, max) + "'";

    /// <summary>A one-line description of a character for messages: <c>'+' (U+002B)</c>.</summary>
    public static string Character(int codePoint)
    {
        string text = codePoint is >= 0 and <= 0x10FFFF && !(codePoint is >= 0xD800 and <= 0xDFFF) ? char.ConvertFromUtf32(codePoint) : "\uFFFD";
        return $"{Quote(text)} (U+{codePoint.ToString("X4", CultureInfo.InvariantCulture)})";
    }

    private static bool IsInvisible(char c) => CharUnicodeInfo.GetUnicodeCategory(c) is
        UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator
        or UnicodeCategory.OtherNotAssigned or UnicodeCategory.PrivateUse;
}
