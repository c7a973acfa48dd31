using System.Text;
using Consort.Formats;
using Consort.Formats.Gguf;
using Consort.Formats.Safetensors;
using Consort.Testing;

namespace Consort.Weights.Tests;

public class SafetensorsTests
{
    private static string HfFolder => TestPaths.Model("tinystories-656k-hf");

    [Fact]
    public void ReadsRealHfCheckpoint()
    {
        using var m = SafetensorsModel.Open(HfFolder);
        Assert.Contains(m.Tensors, t => t.Name == "lm_head.weight" && t.Shape.SequenceEqual(new long[] { 2048, 128 }) && t.Type == GgmlType.F32);
        Assert.Equal(2, m.Tensors.Count(t => t.Name.EndsWith("self_attn.q_proj.weight")));
        var norm = m.ReadFloat32("model.norm.weight");
        Assert.Equal(128, norm.Length);
        Assert.Contains(norm, v => v != 0);
    }

    [Fact]
    public void WriterRoundTripsAllDtypesAndShards()
    {
        using var dir = new TempDir();
        var rng = new Random(1);
        var a = Enumerable.Range(0, 24).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray();
        var types = new[] { GgmlType.F32, GgmlType.F16, GgmlType.BF16 };
        for (int s = 0; s < 2; s++)
        {
            using var w = new SafetensorsWriter(dir.File($"shard{s}.safetensors"));
            foreach (var t in types) w.AddTensor($"s{s}.{t}", [4, 6], t);
            foreach (var t in types) w.WriteTensor($"s{s}.{t}", a);
            w.Commit();
        }
        var map = string.Join(",", types.SelectMany(t => new[] { $"\"s0.{t}\":\"shard0.safetensors\"", $"\"s1.{t}\":\"shard1.safetensors\"" }));
        File.WriteAllText(dir.File(SafetensorsModel.IndexFileName), $"{{\"metadata\":{{}},\"weight_map\":{{{map}}}}}");
        using var m = SafetensorsModel.Open(dir.Path);
        Assert.Equal(6, m.Tensors.Count);
        Assert.Equal(a, m.ReadFloat32("s1.F32"));
        var f16 = m.ReadFloat32("s0.F16");
        var bf16 = m.ReadFloat32("s1.BF16");
        for (int i = 0; i < a.Length; i++)
        {
            Assert.Equal(a[i], f16[i], 1e-3f);
            Assert.Equal(a[i], bf16[i], 1e-2f);
            Assert.NotEqual(a[i], bf16[i]); // really rounded to 8 bits of mantissa
        }
        Assert.Empty(Directory.GetFiles(dir.Path, "*.tmp"));
    }

    [Fact]
    public void TruncatedHeaderIsAClearError()
    {
        using var dir = new TempDir();
        var bytes = File.ReadAllBytes(Path.Combine(HfFolder, "model.safetensors"));
        var path = dir.File("cut.safetensors");
        File.WriteAllBytes(path, bytes[..200]);
        var e = Assert.Throws<ModelFileException>(() => SafetensorsFile.Open(path));
        Assert.Contains("cut.safetensors", e.Message);
        Assert.Contains("truncated header", e.Message);
    }

    [Fact]
    public void TruncatedDataNamesTheTensor()
    {
        using var dir = new TempDir();
        var bytes = File.ReadAllBytes(Path.Combine(HfFolder, "model.safetensors"));
        var path = dir.File("short.safetensors");
        File.WriteAllBytes(path, bytes[..(bytes.Length - 1000)]);
        var e = Assert.Throws<ModelFileException>(() => SafetensorsFile.Open(path));
        Assert.Contains("short.safetensors", e.Message);
        Assert.Matches("tensor '[^']+': data_offsets .* outside the data section", e.Message);
    }

    [Fact]
    public void BadJsonAndBadOffsetsAreClearErrors()
    {
        using var dir = new TempDir();
        static byte[] Make(string json, int data)
        {
            var h = Encoding.UTF8.GetBytes(json);
            return [.. BitConverter.GetBytes((ulong)h.Length), .. h, .. new byte[data]];
        }
        File.WriteAllBytes(dir.File("bad.safetensors"), Make("{\"x\": {\"dtype\": \"F32\", ", 16));
        Assert.Contains("not valid JSON", Assert.Throws<ModelFileException>(() => SafetensorsFile.Open(dir.File("bad.safetensors"))).Message);
        File.WriteAllBytes(dir.File("size.safetensors"), Make("{\"w\": {\"dtype\": \"F32\", \"shape\": [2, 2], \"data_offsets\": [0, 12]}}", 16));
        var e = Assert.Throws<ModelFileException>(() => SafetensorsFile.Open(dir.File("size.safetensors")));
        Assert.Contains("tensor 'w'", e.Message);
        Assert.Contains("needs 16", e.Message);
        File.WriteAllBytes(dir.File("dtype.safetensors"), Make("{\"w\": {\"dtype\": \"F8_E4M3\", \"shape\": [2], \"data_offsets\": [0, 2]}}", 2));
        Assert.Contains("F8_E4M3", Assert.Throws<ModelFileException>(() => SafetensorsFile.Open(dir.File("dtype.safetensors"))).Message);
    }
}
