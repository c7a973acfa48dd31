using Consort.Formats.Gguf;
using Consort.Training;

namespace Consort.Cli.Commands;

/// <summary>Models the benchmarks generate for themselves: randomly initialized LLaMAs of a realistic size, written
/// as GGUF (F16 unless asked, the byte-level tokenizer, so every such model shares one vocabulary).</summary>
internal static class BenchModels
{
    /// <summary>About 27.5M parameters: 512 wide, 8 layers, 8 heads, FFN 1536 (the shape of
    /// <c>consort train --dim 512 --layers 8 --heads 8 --ffn 1536</c>), context 1024.</summary>
    public static TinyLlamaConfig Medium { get; } = new() { Dim = 512, Layers = 8, Heads = 8, Ffn = 1536, Context = 1024 };

    /// <summary>Writes a model of <paramref name="shape"/> with weights drawn from <paramref name="seed"/> (normal, std
    /// 0.02, residual projections scaled down, norms 1: the trainer's initialization) into <paramref name="folder"/>.</summary>
    public static string WriteRandom(string folder, string name, TinyLlamaConfig shape, int seed, GgmlType type = GgmlType.F16)
    {
        var rng = new Random(seed);
        float resid = 0.02f / MathF.Sqrt(2 * shape.Layers);
        var weights = new Dictionary<string, float[]>();
        foreach (var (tensor, dims) in shape.Tensors())
        {
            var data = new float[dims.Aggregate(1L, (a, b) => a * b)];
            if (dims.Length == 1) Array.Fill(data, 1f);
            else
            {
                float std = tensor.EndsWith("attn_output.weight", StringComparison.Ordinal) || tensor.EndsWith("ffn_down.weight", StringComparison.Ordinal) ? resid : 0.02f;
                for (int i = 0; i < data.Length; i += 2)
                {
                    // Box-Muller, both values used.
                    double r = Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())), a = 2 * Math.PI * rng.NextDouble();
                    data[i] = (float)(std * r * Math.Cos(a));
                    if (i + 1 < data.Length) data[i + 1] = (float)(std * r * Math.Sin(a));
                }
            }
            weights[tensor] = data;
        }
        string path = Path.Combine(folder, name + ".gguf");
        GgufModelWriter.Write(path, shape, name, type, weights);
        return path;
    }
}
