using Consort.Formats;
using Consort.Formats.Gguf;
using Consort.Formats.Safetensors;
using Consort.Weights.Config;
using Consort.Weights.Engine;

namespace Consort.Weights.Tests;

/// <summary>Small generated safetensors models for checking methods against reference computations.</summary>
internal static class MergeTestModels
{
    public static readonly (string Name, long[] Shape)[] Layout =
    [
        ("model.layers.0.self_attn.q_proj.weight", [24, 40]),
        ("model.layers.1.mlp.down_proj.weight", [40, 17]),
        ("model.norm.weight", [40]),
    ];

    /// <summary>Writes a model folder whose tensors are <paramref name="make"/>(tensor index, element count).</summary>
    public static string Write(string folder, Func<int, int, float[]> make)
    {
        Directory.CreateDirectory(folder);
        using var w = new SafetensorsWriter(Path.Combine(folder, "model.safetensors"));
        foreach (var (n, s) in Layout) w.AddTensor(n, s, GgmlType.F32);
        for (int i = 0; i < Layout.Length; i++) w.WriteTensor(Layout[i].Name, make(i, (int)Layout[i].Shape.Aggregate(1L, (a, b) => a * b)));
        w.Commit();
        File.WriteAllText(Path.Combine(folder, "config.json"), "{\"model_type\": \"llama\"}");
        return folder;
    }

    public static float[] Random(int seed, int n, float scale = 1f)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 2 - 1) * scale).ToArray();
    }

    public static MergeConfig Cfg(string method, string? baseModel, params (string Path, Dictionary<string, object> P)[] models) => new()
    {
        MergeMethod = method,
        BaseModel = baseModel,
        Models = models.Select(m => new MergeModel(Path.GetFullPath(m.Path), m.P.ToDictionary(kv => kv.Key, kv => MergeParameter.From(kv.Value, "test")))).ToList(),
    };

    public static MergeConfig With(this MergeConfig c, params (string Key, object Value)[] globals) =>
        c with { Parameters = globals.ToDictionary(g => g.Key, g => MergeParameter.From(g.Value, "test")) };

    /// <summary>Runs a merge with tiny chunks (so chunking and multi-pass paths are exercised) and reads every output tensor.</summary>
    public static Dictionary<string, float[]> Run(MergeConfig c, string output, int chunk = 64)
    {
        MergeEngine.Run(c, output, chunkElements: chunk);
        using var m = TensorSources.Open(output);
        return m.Tensors.ToDictionary(t => t.Name, t => m.ReadFloat32(t));
    }

    public static float[] Read(string folder, string tensor)
    {
        using var m = TensorSources.Open(folder);
        return m.ReadFloat32(tensor);
    }

    public static void Close(float[] expected, float[] actual, float tol = 1e-5f)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tol * (1 + Math.Abs(expected[i])), $"element {i}: expected {expected[i]}, got {actual[i]}");
    }
}
