using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Unicode;

namespace Consort.Formats;

/// <summary>
/// JSON reading with limits for every file Consort parses (run and serve configs, datasets, config.json,
/// tokenizer.json, safetensors headers): a size limit checked before reading, valid UTF-8, a nesting depth limit
/// (<see cref="Limits.MaxDocumentDepth"/>) and duplicate keys refused with their name. Errors are one line naming the
/// file, as <see cref="ConfigException"/> (configs), <see cref="ConsortException"/> (datasets) or <see cref="ModelFileException"/> (model files).
/// </summary>
public static class SafeJson
{
    /// <summary>What a document is, for the exception type of its errors.</summary>
    public enum Kind
    {
        /// <summary>A config or dataset: <see cref="ConfigException"/>.</summary>
        Config,
        /// <summary>Part of a model: <see cref="ModelFileException"/>.</summary>
        Model,
        /// <summary>Data (a dataset): <see cref="ConsortException"/>.</summary>
        Data,
    }

    /// <summary>Options for every parse: comments and trailing commas allowed (configs are hand-written), depth bounded, duplicates refused.</summary>
    public static JsonDocumentOptions Options { get; } = new()
    {
        MaxDepth = Limits.MaxDocumentDepth,
        AllowDuplicateProperties = false,
        CommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
    };

    /// <summary>Reads a whole file after checking that it is a file (not a folder) of at most <paramref name="maxBytes"/> bytes of UTF-8.</summary>
    public static byte[] ReadFile(string path, long maxBytes, string what, Kind kind)
    {
        if (Directory.Exists(path)) throw Error(kind, path, $"is a folder, not {what}");
        if (!File.Exists(path)) throw Error(kind, path, "file not found");
        long length = Limits.ResolvedFile(path).Length;
        if (length > maxBytes) throw Error(kind, path, $"{what} of {length:N0} bytes is larger than the limit of {maxBytes:N0} bytes");
        byte[] bytes;
        try { bytes = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw Error(kind, path, $"cannot read it: {e.Message}", e); }
        return bytes;
    }

    /// <summary>Parses a file into a <see cref="JsonDocument"/> (the caller disposes it).</summary>
    public static JsonDocument ParseDocumentFile(string path, long maxBytes, string what, Kind kind) =>
        ParseDocument(ReadFile(path, maxBytes, what, kind), path, kind);

    /// <summary>Parses a file into a <see cref="JsonNode"/>.</summary>
    public static JsonNode? ParseNodeFile(string path, long maxBytes, string what, Kind kind) =>
        ParseNode(ReadFile(path, maxBytes, what, kind), path, kind);

    /// <summary>Parses UTF-8 bytes into a <see cref="JsonDocument"/>; <paramref name="path"/> names the source in errors.</summary>
    public static JsonDocument ParseDocument(ReadOnlyMemory<byte> utf8, string path, Kind kind)
    {
        CheckUtf8(utf8.Span, path, kind);
        try { return JsonDocument.Parse(utf8, Options); }
        catch (JsonException e) { throw Error(kind, path, Describe(e), e); }
    }

    /// <summary>Parses UTF-8 bytes into a <see cref="JsonNode"/>.</summary>
    public static JsonNode? ParseNode(ReadOnlySpan<byte> utf8, string path, Kind kind)
    {
        CheckUtf8(utf8, path, kind);
        try { return JsonNode.Parse(utf8, documentOptions: Options); }
        catch (JsonException e) { throw Error(kind, path, Describe(e), e); }
    }

    /// <summary>Parses text into a <see cref="JsonNode"/> (configs built in memory).</summary>
    public static JsonNode? ParseNode(string text, string where, Kind kind)
    {
        try { return JsonNode.Parse(text, documentOptions: Options); }
        catch (JsonException e) { throw Error(kind, where, Describe(e), e); }
    }

    private static void CheckUtf8(ReadOnlySpan<byte> utf8, string path, Kind kind)
    {
        if (!Utf8.IsValid(utf8)) throw Error(kind, path, "is not valid UTF-8 text");
    }

    /// <summary>"invalid JSON at line L, position P: what" (System.Text.Json's own text, without its position suffix).</summary>
    public static string Describe(JsonException e) =>
        $"invalid JSON at line {(e.LineNumber ?? 0) + 1}, position {(e.BytePositionInLine ?? 0) + 1}: {Reason(e)}";

    /// <summary>System.Text.Json's message without its position suffix, escaped and cut.</summary>
    public static string Reason(JsonException e)
    {
        string message = e.Message;
        int cut = message.IndexOf(" Path:", StringComparison.Ordinal);
        if (cut < 0) cut = message.IndexOf(" LineNumber:", StringComparison.Ordinal);
        if (cut > 0) message = message[..cut];
        return MessageText.Escape(message);
    }

    private static ConsortException Error(Kind kind, string path, string problem, Exception? inner = null) =>
        kind switch
        {
            Kind.Model => new ModelFileException(path, problem, inner),
            Kind.Data => new ConsortException($"{path}: {problem}", inner),
            _ => new ConfigException($"{path}: {problem}", inner),
        };
}
