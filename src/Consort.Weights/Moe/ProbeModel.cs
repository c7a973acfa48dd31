using Consort.Formats;
using Consort.Formats.Gguf;

namespace Consort.Weights.Moe;

/// <summary>Where a probe model reads the residual stream of layer L.</summary>
public enum ProbePoint
{
    /// <summary>The input of layer L (the output of layer L − 1; the token embeddings for L = 0): mergekit's hidden states.</summary>
    LayerInput,
    /// <summary>After layer L's attention, before its MLP: what layer L's router sees (before ffn_norm).</summary>
    AfterAttention,
}

/// <summary>
/// Writes "probe" models: a GGUF model cut after layer L whose last layer contributes nothing past the probe point
/// (its attention output and/or MLP down projections zeroed, so the residual passes through) and whose final norm has
/// unit weights. Its llama.cpp embedding of a token is then the residual stream at that point, RMS-normalized: hidden
/// states computed by llama.cpp itself, through its embeddings API.
/// </summary>
public static class ProbeModel
{
    /// <summary>Writes the probe of <paramref name="model"/> (GGUF) at <paramref name="point"/> of <paramref name="layer"/> to <paramref name="output"/>.</summary>
    public static void Write(string model, int layer, ProbePoint point, string output)
    {
        using var f = GgufFile.Open(model);
        var arch = f.Architecture ?? "llama";
        int layers = (int)(f.GetInt(arch + ".block_count") ?? throw new ModelFileException(model, $"has no {arch}.block_count"));
        if (layer < 0 || layer >= layers) throw new ArgumentOutOfRangeException(nameof(layer), $"layer {layer} of a {layers}-layer model");
        using var w = new GgufWriter(output, f.Alignment);
        w.CopyMetadata(f);
        w.SetMetadata(arch + ".block_count", GgufValue.Of((uint)(layer + 1)));
        var kept = f.Tensors.Where(t => TensorNames.LayerIndex(t.Name) is not int l || l <= layer).ToList();
        bool Zero(GgufTensorInfo t) => TensorNames.LayerIndex(t.Name) == layer
            && (t.Name.Contains("ffn_down") || (point == ProbePoint.LayerInput && t.Name.EndsWith("attn_output.weight")));
        foreach (var t in kept) w.AddTensor(t.Name, t.Dimensions, t.Type);
        foreach (var t in kept)
        {
            if (t.Name == "output_norm.weight") w.WriteTensor(t.Name, Enumerable.Repeat(1f, (int)t.ElementCount).ToArray());
            else if (Zero(t)) w.WriteTensor(t.Name, new float[t.ElementCount]);
            else w.WriteTensorData(t.Name, f.TensorBytes(t)); // as stored
        }
        w.Commit();
    }
}
