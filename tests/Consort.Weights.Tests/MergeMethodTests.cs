using Consort.Testing;
using Consort.Weights.Methods;
using static Consort.Weights.Tests.MergeTestModels;

namespace Consort.Weights.Tests;

/// <summary>Each method against a straightforward whole-array reference computation on generated tensors.</summary>
public class MergeMethodTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly string _base, _a, _b, _c;

    public MergeMethodTests()
    {
        _base = Write(_dir.File("base"), (t, n) => Random(100 + t, n));
        // Fine-tunes: base plus a task vector of their own.
        _a = Write(_dir.File("a"), (t, n) => Add(Random(100 + t, n), Random(200 + t, n, 0.1f)));
        _b = Write(_dir.File("b"), (t, n) => Add(Random(100 + t, n), Random(300 + t, n, 0.1f)));
        _c = Write(_dir.File("c"), (t, n) => Add(Random(100 + t, n), Random(400 + t, n, 0.1f)));
    }

    public void Dispose() => _dir.Dispose();

    private static float[] Add(float[] x, float[] y) => x.Zip(y, (p, q) => p + q).ToArray();
    private static string T0 => Layout[0].Name;
    private static Dictionary<string, object> P(params (string, object)[] kv) => kv.ToDictionary(x => x.Item1, x => x.Item2);

    private float[] Delta(string model, string tensor) => Read(model, tensor).Zip(Read(_base, tensor), (x, b) => x - b).ToArray();

    private static bool[] TopK(float[] d, double density)
    {
        int k = (int)(density * d.Length);
        var keep = new bool[d.Length];
        foreach (var i in Enumerable.Range(0, d.Length).OrderByDescending(i => Math.Abs(d[i])).Take(k)) keep[i] = true;
        return keep;
    }

    [Fact]
    public void LinearMatchesWeightedAverage()
    {
        var c = Cfg("linear", null, (_a, P(("weight", 0.3))), (_b, P(("weight", 0.5))));
        var outp = Run(c, _dir.File("lin"));
        foreach (var (name, _) in Layout)
        {
            var a = Read(_a, name); var b = Read(_b, name);
            Close(a.Zip(b, (x, y) => (0.3f * x + 0.5f * y) / 0.8f).ToArray(), outp[name]);
        }
        var raw = Run(c.With(("normalize", false)), _dir.File("lin2"));
        Close(Read(_a, T0).Zip(Read(_b, T0), (x, y) => 0.3f * x + 0.5f * y).ToArray(), raw[T0]);
    }

    [Fact]
    public void TaskArithmeticMatchesReference()
    {
        var c = Cfg("task_arithmetic", _base, (_a, P(("weight", 0.7))), (_b, P(("weight", 0.4)))).With(("lambda", 1.5));
        var o = Run(c, _dir.File("ta"))[T0];
        var bs = Read(_base, T0); var da = Delta(_a, T0); var db = Delta(_b, T0);
        Close(bs.Select((x, i) => x + 1.5f * (0.7f * da[i] + 0.4f * db[i])).ToArray(), o);
    }

    [Fact]
    public void TiesTrimsByMagnitudeAndElectsSignBySum()
    {
        var c = Cfg("ties", _base, (_a, P(("weight", 1.0), ("density", 0.3))), (_b, P(("weight", 0.6), ("density", 0.5))), (_c, P(("weight", 0.8), ("density", 0.7))));
        foreach (var (name, _) in Layout)
        {
            var o = Run(c, _dir.File("ties-" + name))[name];
            var bs = Read(_base, name);
            var ds = new[] { Delta(_a, name), Delta(_b, name), Delta(_c, name) };
            var w = new[] { 1.0f, 0.6f, 0.8f }; var dens = new[] { 0.3, 0.5, 0.7 };
            var keeps = ds.Select((d, i) => TopK(d, dens[i])).ToArray();
            var expected = new float[bs.Length];
            for (int j = 0; j < bs.Length; j++)
            {
                var wd = Enumerable.Range(0, 3).Select(i => keeps[i][j] ? ds[i][j] * w[i] : 0f).ToArray();
                float sign = wd.Sum() >= 0 ? 1 : -1;
                float mixed = 0, div = 0;
                for (int i = 0; i < 3; i++) if (wd[i] != 0 && Math.Sign(wd[i]) == sign) { mixed += wd[i]; div += w[i]; }
                expected[j] = bs[j] + mixed / (div == 0 ? 1 : div);
            }
            Close(expected, o);
            // Trimming really happened: elements where only trimmed deltas existed stay at the base.
            Assert.Contains(Enumerable.Range(0, bs.Length), j => o[j] == bs[j]);
        }
    }

    [Fact]
    public void DareRescalesKeptDeltasByInverseDensityAndIsSeeded()
    {
        var c = Cfg("dare_linear", _base, (_a, P(("weight", 1.0), ("density", 0.25))));
        var o = Run(c, _dir.File("dare"))[T0];
        var bs = Read(_base, T0); var d = Delta(_a, T0);
        int kept = 0;
        for (int j = 0; j < bs.Length; j++)
        {
            float got = o[j] - bs[j];
            if (got == 0) continue;
            kept++;
            Assert.Equal(d[j] / 0.25f, got, 1e-4f);
        }
        double frac = kept / (double)bs.Length;
        Assert.InRange(frac, 0.18, 0.32); // Bernoulli(0.25) over 960 elements
        Assert.Equal(o, Run(c, _dir.File("dare-again"), chunk: 256)[T0]); // same seed, other chunking: identical
        Assert.NotEqual(o, Run(c with { Seed = 7 }, _dir.File("dare-seed7"))[T0]);
        var noRescale = Run(c.With(("rescale", false)), _dir.File("dare-norescale"))[T0];
        for (int j = 0; j < bs.Length; j++) if (noRescale[j] != bs[j]) Assert.Equal(d[j], noRescale[j] - bs[j], 1e-5f);
    }

    [Fact]
    public void DareTiesRunsAndKeepsTheBaseWhereEverythingIsDropped()
    {
        var c = Cfg("dare_ties", _base, (_a, P(("weight", 1.0), ("density", 0.5))), (_b, P(("weight", 1.0), ("density", 0.5))));
        var o = Run(c, _dir.File("dt"))[T0];
        var bs = Read(_base, T0);
        int same = Enumerable.Range(0, bs.Length).Count(j => o[j] == bs[j]);
        Assert.InRange(same / (double)bs.Length, 0.15, 0.35); // both dropped: 0.25
    }

    [Fact]
    public void BreadcrumbsDropsLargestAndSmallest()
    {
        var c = Cfg("breadcrumbs", _base, (_a, P(("weight", 1.0), ("density", 0.6), ("gamma", 0.1))));
        var o = Run(c, _dir.File("bc"))[T0];
        var bs = Read(_base, T0); var d = Delta(_a, T0);
        int n = d.Length, target = (int)(0.6 * n), top = (int)(0.1 * n), bottom = n - target - top;
        var asc = Enumerable.Range(0, n).OrderBy(i => Math.Abs(d[i])).ToArray();
        var keep = new bool[n];
        foreach (var i in asc[bottom..(n - top)]) keep[i] = true;
        Close(bs.Select((x, i) => keep[i] ? x + d[i] : x).ToArray(), o);
    }

    [Fact]
    public void SlerpAtEndsMiddleAndParallel()
    {
        var t0 = Run(Cfg("slerp", _base, (_a, P())).With(("t", 0.0)), _dir.File("s0"))[T0];
        var t1 = Run(Cfg("slerp", _base, (_a, P())).With(("t", 1.0)), _dir.File("s1"))[T0];
        var th = Run(Cfg("slerp", _base, (_a, P())).With(("t", 0.5)), _dir.File("sh"))[T0];
        var v0 = Read(_base, T0); var v1 = Read(_a, T0);
        Close(v0, t0);
        Close(v1, t1);
        double n0 = Math.Sqrt(v0.Sum(x => (double)x * x)), n1 = Math.Sqrt(v1.Sum(x => (double)x * x));
        double cos = v0.Zip(v1, (x, y) => (double)x * y).Sum() / (n0 * n1);
        double theta = Math.Acos(cos);
        Assert.True(cos < 0.9995); // a real angle: not the lerp fallback
        float s0 = (float)(Math.Sin(theta / 2) / Math.Sin(theta)), s1 = s0;
        Close(v0.Zip(v1, (x, y) => s0 * x + s1 * y).ToArray(), th);
        // Nearly parallel: falls back to lerp.
        var par = Write(_dir.File("par"), (t, n) => Random(100 + t, n).Select(x => x * 1.0001f).ToArray());
        var lerp = Run(Cfg("slerp", _base, (par, P())).With(("t", 0.25)), _dir.File("sp"))[T0];
        var p1 = Read(par, T0);
        Close(v0.Zip(p1, (x, y) => 0.75f * x + 0.25f * y).ToArray(), lerp);
        Assert.Equal((0.75, 0.25), SlerpMerge.Coefficients(0.25, 1, 1, 1));
    }

    [Fact]
    public void ModelStockMatchesReference()
    {
        var o = Run(Cfg("model_stock", _base, (_a, P()), (_b, P()), (_c, P())), _dir.File("ms"))[T0];
        var bs = Read(_base, T0);
        var ds = new[] { Delta(_a, T0), Delta(_b, T0), Delta(_c, T0) };
        double Dot(float[] x, float[] y) => x.Zip(y, (p, q) => (double)p * q).Sum();
        double cos = 0;
        for (int i = 0; i < 3; i++) for (int j = i + 1; j < 3; j++) cos += Dot(ds[i], ds[j]) / Math.Sqrt(Dot(ds[i], ds[i]) * Dot(ds[j], ds[j]));
        cos /= 3;
        double t = 3 * cos / (1 + 2 * cos);
        var xs = new[] { Read(_a, T0), Read(_b, T0), Read(_c, T0) };
        Close(bs.Select((b, j) => (float)(t * (xs[0][j] + xs[1][j] + xs[2][j]) / 3 + (1 - t) * b)).ToArray(), o, 1e-4f);
    }

    [Fact]
    public void ModelStockFilterWiseMatchesPerRowReference()
    {
        // T0 is [24, 40]: 24 rows of 40, and the test's 64-element chunks cut across rows.
        var o = Run(Cfg("model_stock", _base, (_a, P()), (_b, P()), (_c, P())).With(("filter_wise", true)), _dir.File("msr"))[T0];
        var bs = Read(_base, T0);
        var ds = new[] { Delta(_a, T0), Delta(_b, T0), Delta(_c, T0) };
        var xs = new[] { Read(_a, T0), Read(_b, T0), Read(_c, T0) };
        int cols = (int)Layout[0].Shape[1];
        var expected = new float[bs.Length];
        var ts = new HashSet<double>();
        for (int r = 0; r < bs.Length / cols; r++)
        {
            double Dot(float[] x, float[] y) { double d = 0; for (int j = r * cols; j < (r + 1) * cols; j++) d += (double)x[j] * y[j]; return d; }
            double cos = 0;
            for (int i = 0; i < 3; i++) for (int j = i + 1; j < 3; j++) cos += Dot(ds[i], ds[j]) / Math.Sqrt(Dot(ds[i], ds[i]) * Dot(ds[j], ds[j]));
            cos /= 3;
            double t = 3 * cos / (1 + 2 * cos);
            ts.Add(Math.Round(t, 6));
            for (int j = r * cols; j < (r + 1) * cols; j++) expected[j] = (float)(t * (xs[0][j] + xs[1][j] + xs[2][j]) / 3 + (1 - t) * bs[j]);
        }
        Assert.True(ts.Count > 1, "rows should get different ratios");
        Close(expected, o, 1e-4f);
    }

    [Fact]
    public void ExpoExtrapolates()
    {
        var o = Run(Cfg("expo", _base, (_a, P())).With(("alpha", 0.3)), _dir.File("ex"))[T0];
        var ws = Read(_base, T0); var wt = Read(_a, T0);
        Close(wt.Zip(ws, (t, s) => t + 0.3f * (t - s)).ToArray(), o);
    }

    [Fact]
    public void GradientsAndFiltersResolvePerLayer()
    {
        var p = Consort.Weights.Config.MergeParameter.From(new List<object?> { 0.0, 1.0 }, "t");
        Assert.Equal(0.0, p.Resolve("blk.0.attn_q.weight", 5));
        Assert.Equal(0.5, p.Resolve("model.layers.2.mlp.up_proj.weight", 5));
        Assert.Equal(1.0, p.Resolve("blk.4.attn_q.weight", 5));
        var f = Consort.Weights.Config.MergeParameter.From(new List<object?>
        {
            new Dictionary<string, object?> { ["filter"] = "self_attn", ["value"] = 0.2 },
            new Dictionary<string, object?> { ["value"] = 0.9 },
        }, "t");
        Assert.Equal(0.2, f.Resolve("blk.1.attn_k.weight", 5)); // GGUF name matched through the HF name
        Assert.Equal(0.9, f.Resolve("blk.1.ffn_up.weight", 5));
    }

    [Fact]
    public void UnknownMethodsAndParametersAreConfigErrors()
    {
        Assert.Contains("known:", Assert.Throws<ConfigException>(() => Run(Cfg("frankenmerge", null, (_a, P())), _dir.File("x"))).Message);
        var e = Assert.Throws<ConfigException>(() => Run(Cfg("ties", _base, (_a, P(("wieght", 1.0)))), _dir.File("y")));
        Assert.Contains("wieght", e.Message);
        Assert.Contains("needs parameter 'weight'", Assert.Throws<ConfigException>(() => Run(Cfg("ties", _base, (_a, P())), _dir.File("z"))).Message);
        Assert.False(Directory.Exists(_dir.File("z")) && File.Exists(_dir.File("z/model.safetensors")));
    }
}
