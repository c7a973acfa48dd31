using System.Globalization;
using LLama;

namespace Consort.LlamaCpp;

/// <summary>
/// Size of a model's KV cache: one stream per sequence, each holding <see cref="TokensPerSequence"/> tokens plus one
/// cell for the padding token (see <see cref="LlamaBatchEngine"/>), rounded up by llama.cpp to a multiple of
/// <see cref="CellRounding"/> cells; keys and values in F16 for every layer.
/// </summary>
/// <param name="Sequences">Sequences (slots), the model's max_sequences.</param>
/// <param name="TokensPerSequence">Tokens one sequence may hold, the model's context size.</param>
/// <param name="Cells">Cells llama.cpp allocated over all streams (it rounds up).</param>
/// <param name="BytesPerToken">Bytes one cell takes over all layers (keys and values).</param>
public sealed record KvCacheInfo(int Sequences, int TokensPerSequence, long Cells, long BytesPerToken)
{
    /// <summary>llama.cpp rounds each sequence's stream up to a multiple of this many cells.</summary>
    public const int CellRounding = 256;

    /// <summary>Total bytes.</summary>
    public long Bytes => Cells * BytesPerToken;

    /// <summary>Bytes per cell of a model with these shapes, F16 keys and values (llama.cpp's default).</summary>
    public static long BytesPerCell(long layers, long keyWidth, long valueWidth) => layers * (keyWidth + valueWidth) * 2;

    /// <summary>The cache a model with <paramref name="bytesPerToken"/> per cell gets for <paramref name="sequences"/> x <paramref name="tokens"/>
    /// (what <see cref="LlamaTokenModel"/> asks llama.cpp for, rounded as llama.cpp rounds).</summary>
    public static KvCacheInfo Plan(int sequences, int tokens, long bytesPerToken)
    {
        long perStream = (tokens + 1 + CellRounding - 1) / CellRounding * CellRounding;
        return new KvCacheInfo(sequences, tokens, perStream * sequences, bytesPerToken);
    }

    internal static KvCacheInfo Of(LLamaWeights weights, int sequences, int tokens, int cells)
    {
        var h = weights.NativeHandle;
        long heads = Math.Max(1, h.HeadCount), kvHeads = Math.Max(1, h.KVHeadCount);
        string arch = weights.Metadata.GetValueOrDefault("general.architecture") ?? "llama";
        long Width(string key) => weights.Metadata.TryGetValue($"{arch}.attention.{key}", out var v)
            && long.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out var w) ? w : h.EmbeddingSize / heads;
        return new KvCacheInfo(sequences, tokens, cells, BytesPerCell(h.LayerCount, Width("key_length") * kvHeads, Width("value_length") * kvHeads));
    }

    /// <summary>"12.5 MiB (4 sequences x 2048 tokens, 16.0 KiB per token, F16)".</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Bytes / 1048576.0:0.0} MiB ({Sequences} sequences x {TokensPerSequence} tokens, {BytesPerToken / 1024.0:0.0} KiB per token, F16)");
}
