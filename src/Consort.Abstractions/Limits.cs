using System.Globalization;

namespace Consort;

/// <summary>
/// Upper bounds on every user-given number that sizes work (threads, contexts, sequences, tokens, concurrency,
/// method repeats and searches) and on the documents Consort parses, in one place. They are checked before any work starts, so a typo such as
/// <c>threads: 100000</c> is one clear error instead of a hang, a native crash or gigabytes of memory.
/// Bounds come from the machine (processor count, memory) or from documented limits of llama.cpp.
/// </summary>
public static class Limits
{
    /// <summary>Most tokens one call may generate (task and server <c>max_tokens</c>): never more than a context holds.</summary>
    public const int MaxGeneratedTokens = MaxContextTokens;
    /// <summary>Most entries of a list-valued hyperparameter (weights, thresholds, descriptions, ...).</summary>
    public const int MaxListOption = 4096;
    /// <summary>Most samples, rounds, layers or agents of one method call (each multiplies inner calls).</summary>
    public const int MaxRepeats = 1024;
    /// <summary>Most iterations or population of a search (swarms, CMA-ES, ...).</summary>
    public const int MaxSearchSteps = 100_000;
    /// <summary>Longest user-supplied text echoed in a message.</summary>
    public const int MessageTextLength = MessageText.DefaultMax;

    /// <summary>User text made safe for a one-line message: control characters escaped, cut to <see cref="MessageTextLength"/>.</summary>
    public static string ForMessage(string? text) => text is null ? "null" : MessageText.Escape(text, MessageTextLength);

    /// <summary>Most decode threads per model: 4 per logical processor (oversubscription beyond that only
    /// slows llama.cpp down), never more than ggml's GGML_MAX_N_THREADS (512).</summary>
    public static int MaxThreads => Math.Clamp(Environment.ProcessorCount * 4, 4, 512);

    /// <summary>Most sequences one llama.cpp context decodes together (llama.cpp's LLAMA_MAX_SEQ in the pinned build).</summary>
    public const int MaxSequences = 64;

    /// <summary>Most tokens of one sequence (a model entry's <c>context_size</c>); no GGUF model Consort runs trains longer.</summary>
    public const int MaxContextTokens = 1 << 20;

    /// <summary>Most context tokens of one llama.cpp context (sequence length x sequences).</summary>
    public const int MaxTotalContextTokens = 1 << 22;

    /// <summary>Most items or requests in flight at once (<c>concurrency</c>, <c>--concurrency</c>, server requests).</summary>
    public const int MaxConcurrency = 1024;

    /// <summary>Largest run, serve or JSON side file (config.json, tokenizer_config.json) read whole.</summary>
    public const long MaxConfigBytes = 16L << 20;

    /// <summary>Largest dataset file (parsed whole into memory: a few times its size).</summary>
    public const long MaxDatasetBytes = 512L << 20;

    /// <summary>Largest tokenizer.json (a 256k-token vocabulary with merges is ~20 MB).</summary>
    public const long MaxTokenizerBytes = 256L << 20;

    /// <summary>Largest merge YAML config.</summary>
    public const long MaxYamlBytes = 4L << 20;

    /// <summary>Deepest nesting of JSON and YAML documents (System.Text.Json's default, also ample for any config).</summary>
    public const int MaxDocumentDepth = 64;

    /// <summary>Most nodes a YAML document may have after its aliases are expanded (defeats "billion laughs").</summary>
    public const int MaxYamlNodes = 100_000;

    /// <summary>Memory available to this process (the GC's view: physical memory or the container limit).</summary>
    public static long AvailableMemoryBytes
    {
        get
        {
            long total = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
            return total > 0 ? total : 8L << 30;
        }
    }

    /// <summary>Checks <c>min &lt;= value &lt;= max</c>; otherwise a <see cref="ConfigException"/> naming the key and the bound.</summary>
    /// <param name="value">The value given.</param>
    /// <param name="min">Smallest allowed.</param>
    /// <param name="max">Largest allowed.</param>
    /// <param name="key">The key as the user wrote it (e.g. "threads").</param>
    /// <param name="where">Where it was given (e.g. "model 'arith'").</param>
    /// <param name="why">Where the upper bound comes from, for the message.</param>
    public static long Check(long value, long min, long max, string key, string where, string? why = null)
    {
        if (value < min || value > max)
        {
            string range = max == long.MaxValue ? $"at least {min}" : $"{min}..{max.ToString("N0", CultureInfo.InvariantCulture)}";
            throw new ConfigException($"{where}: '{key}' is {value.ToString(CultureInfo.InvariantCulture)}; allowed: {range}" + (why is null ? "" : $" ({why})"));
        }
        return value;
    }

    /// <summary><see cref="Check(long, long, long, string, string, string?)"/> for an int.</summary>
    public static int Check(int value, int min, int max, string key, string where, string? why = null) =>
        (int)Check((long)value, min, max, key, where, why);

    /// <summary>
    /// The file as its content is seen: a symbolic link (the Hugging Face cache links snapshots to blobs) resolved to
    /// its final target, whose length and modification time are the ones that matter (FileInfo gives the link's own).
    /// </summary>
    public static FileInfo ResolvedFile(string path)
    {
        var info = new FileInfo(path);
        return info.LinkTarget is not null && info.ResolveLinkTarget(returnFinalTarget: true) is FileInfo target ? target : info;
    }

    /// <summary>Checks a file's size before it is read whole; too large is a <see cref="ConfigException"/>.</summary>
    public static void CheckFileSize(string path, long max, string what)
    {
        long length = ResolvedFile(path).Length;
        if (length > max)
            throw new ConfigException($"{path}: {what} of {length.ToString("N0", CultureInfo.InvariantCulture)} bytes is larger than the limit of {max.ToString("N0", CultureInfo.InvariantCulture)} bytes");
    }
}
