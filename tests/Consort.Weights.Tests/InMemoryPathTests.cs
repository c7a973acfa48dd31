using Consort.Formats;
using Consort.Formats.Gguf;
using Consort.Formats.Safetensors;
using Consort.Testing;
using Consort.Weights.Config;
using Consort.Weights.Engine;
using static Consort.Weights.Tests.MergeTestModels;

namespace Consort.Weights.Tests;

/// <summary>
/// The engine's in-memory path (tensors within the memory budget: decoded once, merged in parallel parts) must give
/// byte-identical files to the streaming path for every method, including top-k ties split across parts.
/// </summary>
public class InMemoryPathTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly string _base, _a, _b, _c;

    public InMemoryPathTests()
    {
        // Values on a coarse grid (multiples of 1/64) so task-vector magnitudes tie a lot: the top-k threshold then
        // has many equal elements, and the "first in element order" quota crosses part boundaries.
        _base = WriteF16(_dir.File("base"), 100, 0);
        _a = WriteF16(_dir.File("a"), 100, 200);
        _b = WriteF16(_dir.File("b"), 100, 300);
        _c = WriteF16(_dir.File("c"), 100, 400);
    }

    public void Dispose() => _dir.Dispose();

    private static readonly (string Name, long[] Shape)[] Big =
    [
        ("model.layers.0.self_attn.q_proj.weight", [96, 160]),
        ("model.layers.1.mlp.down_proj.weight", [160, 97]),
        ("model.norm.weight", [160]),
    ];

    private static string WriteF16(string folder, int seed, int deltaSeed)
    {
        Directory.CreateDirectory(folder);
        using var w = new SafetensorsWriter(Path.Combine(folder, "model.safetensors"));
        foreach (var (n, s) in Big) w.AddTensor(n, s, GgmlType.F16);
        for (int i = 0; i < Big.Length; i++)
        {
            int count = (int)Big[i].Shape.Aggregate(1L, (x, y) => x * y);
            var v = Random(seed + i, count);
            if (deltaSeed != 0)
            {
                var d = Random(deltaSeed + i, count);
                for (int j = 0; j < count; j++) v[j] += MathF.Round(d[j] * 4) / 64f;
            }
            for (int j = 0; j < count; j++) v[j] = MathF.Round(v[j] * 64) / 64f;
            w.WriteTensor(Big[i].Name, v);
        }
        w.Commit();
        File.WriteAllText(Path.Combine(folder, "config.json"), "{\"model_type\": \"llama\"}");
        return folder;
    }

    private static Dictionary<string, object> P(params (string, object)[] kv) => kv.ToDictionary(x => x.Item1, x => x.Item2);

    public static TheoryData<string> Methods => new()
    {
        "linear", "task_arithmetic", "ties", "ties_rescale", "dare_linear", "dare_ties", "breadcrumbs", "breadcrumbs_ties",
        "breadcrumbs_rescale", "slerp", "model_stock", "model_stock_rows", "expo", "passthrough",
    };

    private MergeConfig Config(string method)
    {
        var three = new[] { (_a, P(("weight", 1.0), ("density", 0.3))), (_b, P(("weight", 0.6), ("density", 0.5))), (_c, P(("weight", 0.8), ("density", 0.7))) };
        var gamma = three.Select(m => (m.Item1, P(("weight", 0.7), ("density", 0.6), ("gamma", 0.05)))).ToArray();
        return method switch
        {
            "linear" => Cfg("linear", null, (_a, P(("weight", 0.3))), (_b, P(("weight", 0.5)))),
            "task_arithmetic" => Cfg("task_arithmetic", _base, (_a, P(("weight", 0.7))), (_b, P(("weight", 0.4)))).With(("lambda", 1.5)),
            "ties" => Cfg("ties", _base, three),
            "ties_rescale" => Cfg("ties", _base, three).With(("rescale", true), ("lambda", 0.9)),
            "dare_linear" => Cfg("dare_linear", _base, three) with { Seed = 7 },
            "dare_ties" => Cfg("dare_ties", _base, three) with { Seed = 7 },
            "breadcrumbs" => Cfg("breadcrumbs", _base, gamma),
            "breadcrumbs_ties" => Cfg("breadcrumbs_ties", _base, gamma).With(("normalize", true)),
            "breadcrumbs_rescale" => Cfg("breadcrumbs", _base, gamma).With(("rescale", true)),
            "slerp" => Cfg("slerp", _base, (_a, P())).With(("t", 0.4)),
            "model_stock" => Cfg("model_stock", _base, (_a, P()), (_b, P()), (_c, P())),
            "model_stock_rows" => Cfg("model_stock", _base, (_a, P()), (_b, P()), (_c, P())).With(("filter_wise", true)),
            "expo" => Cfg("expo", _base, (_a, P())).With(("alpha", 0.3)),
            "passthrough" => Cfg("passthrough", null, (_b, P(("scale", 0.5)))),
            _ => throw new ArgumentException(method),
        };
    }

    [Theory]
    [MemberData(nameof(Methods))]
    public void InMemoryAndStreamingOutputsAreByteIdentical(string method)
    {
        var c = Config(method);
        var streamed = _dir.File(method + "-stream");
        var memory = _dir.File(method + "-memory");
        var parts = _dir.File(method + "-parts");
        // Streaming in chunks of 64 (every tensor makes its passes chunk by chunk) ...
        var rs = MergeEngine.Run(c, streamed, chunkElements: 64, memoryBudgetBytes: 0);
        // ... vs in memory with the default chunk (one part per tensor) and with parts of 64 on 3 workers.
        var rm = MergeEngine.Run(c, memory);
        MergeEngine.Run(c, parts, chunkElements: 64, parallelism: 3);
        var expected = File.ReadAllBytes(Path.Combine(streamed, "model.safetensors"));
        Assert.Equal(expected, File.ReadAllBytes(Path.Combine(memory, "model.safetensors")));
        Assert.Equal(expected, File.ReadAllBytes(Path.Combine(parts, "model.safetensors")));
        // Every pass over an input is counted; the in-memory path never decodes more than the streaming one.
        long inputBytes = new[] { _base, _a, _b, _c }.Where(p => c.AllPaths.Contains(Path.GetFullPath(p)))
            .Sum(p => { using var m = TensorSources.Open(p); return m.Tensors.Sum(t => t.ByteSize); });
        Assert.True(rm.BytesRead >= inputBytes, $"in memory read {rm.BytesRead} bytes of {inputBytes}");
        Assert.True(rs.BytesRead >= rm.BytesRead, $"streaming read {rs.BytesRead}, in memory {rm.BytesRead}");
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(MergeEngine.DefaultMemoryBudget)]
    public void UndecodableTensorIsAModelFileErrorOnBothPaths(long budget)
    {
        // An I32 tensor cannot be merged: the error names the file and tensor, also when it is raised inside the
        // parallel parts of the in-memory path.
        string Model(string name, int value)
        {
            var folder = _dir.File(name);
            Directory.CreateDirectory(folder);
            using var w = new SafetensorsWriter(Path.Combine(folder, "model.safetensors"));
            w.AddTensor("model.layers.0.mlp.up_proj.weight", [8, 8], GgmlType.I32);
            w.WriteTensorChunk("model.layers.0.mlp.up_proj.weight", System.Runtime.InteropServices.MemoryMarshal.AsBytes(Enumerable.Repeat(value, 64).ToArray().AsSpan()));
            w.Commit();
            return folder;
        }
        var c = Cfg("ties", Model("ib" + budget, 1), (Model("ia" + budget, 2), P(("weight", 1.0), ("density", 0.5))));
        var e = Assert.Throws<ModelFileException>(() => MergeEngine.Run(c, _dir.File("iout" + budget), memoryBudgetBytes: budget));
        Assert.Contains("model.layers.0.mlp.up_proj.weight", e.Message);
    }

    [Fact]
    public void TiesOnTiedMagnitudesKeepsExactlyTheDensityCount()
    {
        // One model, density 0.5: the kept task-vector elements must number exactly floor(0.5 n) although most
        // magnitudes tie (the quota of equal elements is split across 64-element parts).
        var c = Cfg("ties", _base, (_a, P(("weight", 1.0), ("density", 0.5))));
        var o = Run(c, _dir.File("one"));
        foreach (var (name, shape) in Big)
        {
            var bs = Read(_base, name); var a = Read(_a, name);
            int n = bs.Length, kept = 0, nonzero = 0;
            for (int j = 0; j < n; j++)
            {
                if (a[j] != bs[j]) nonzero++;
                if (o[name][j] != bs[j]) { kept++; Assert.Equal(a[j], o[name][j]); }
            }
            Assert.Equal(Math.Min(nonzero, n / 2), kept);
        }
    }

    // Coarse values tie at the threshold (a quota picks the first ones); distinct values never do, and with a
    // shared zero run the whole tie group is kept (the selection becomes "at least the threshold").
    [Theory]
    [InlineData("coarse")]
    [InlineData("distinct")]
    [InlineData("zeros")]
    public void SelectorInMemoryMatchesStreamingBuild(string kind)
    {
        var r = new Random(5);
        var v = Enumerable.Range(0, 50_000).Select(i => kind switch
        {
            "coarse" => MathF.Round((float)(r.NextDouble() * 2 - 1) * 32) / 32f,
            "zeros" => i % 2 == 0 ? 0f : (float)(r.NextDouble() * 2 - 1),
            _ => (float)(r.NextDouble() * 2 - 1),
        }).ToArray();
        foreach (long k in new long[] { 0, 1, 777, 25_000, 49_999, 50_000 })
        {
            var s = TopKSelector.Build(k, v.Length, visit => { for (int i = 0; i < v.Length; i += 1000) visit(v.AsSpan(i, 1000)); });
            var m = TopKSelector.Build(k, v);
            s.Reset();
            var masked = (float[])v.Clone();
            long q = m.EqualQuota;
            m.Mask(masked.AsSpan(0, 20_001), ref q); // odd split: vector tail and scalar lanes
            m.Mask(masked.AsSpan(20_001), ref q);
            int kept = 0;
            for (int i = 0; i < v.Length; i++)
            {
                bool keep = s.Keep(v[i]);
                Assert.Equal(keep ? v[i] : 0f, masked[i]);
                if (keep) kept++;
            }
            Assert.Equal(k, kept);
        }
    }
}
