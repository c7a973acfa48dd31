using Consort.Formats;
using Consort.Formats.Gguf;
using Consort.Formats.Safetensors;
using Consort.Testing;
using Consort.Weights.Config;
using Consort.Weights.Engine;
using Consort.Weights.Methods;
using static Consort.Weights.Tests.MergeTestModels;

namespace Consort.Weights.Tests;

/// <summary>
/// The methods mergekit has beyond the task-arithmetic family (nuslerp, multislerp, karcher, della, della_linear, sce,
/// ram, ramplus_tl, nearswap, arcee_fusion), each against a straightforward whole-array reference computation on
/// generated tensors large enough for several blocks, and with byte-identical in-memory and streamed outputs.
/// </summary>
public class SphericalAndSparseMethodTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly string _base, _a, _b, _c, _sa, _sb, _sc, _h;

    public static readonly (string Name, long[] Shape)[] Layout =
    [
        ("model.layers.0.self_attn.q_proj.weight", [96, 160]),
        ("model.layers.1.mlp.down_proj.weight", [160, 97]),
        ("model.norm.weight", [160]),
    ];

    public SphericalAndSparseMethodTests()
    {
        _base = Model("base", (t, n) => Random(100 + t, n));
        _a = Model("a", (t, n) => Add(Random(100 + t, n), Random(200 + t, n, 0.1f)));
        _b = Model("b", (t, n) => Add(Random(100 + t, n), Random(300 + t, n, 0.1f)));
        _c = Model("c", (t, n) => Add(Random(100 + t, n), Random(400 + t, n, 0.1f)));
        // Sparse task vectors (RAM's setting): each model changes about a third of the elements.
        _sa = Model("sa", (t, n) => Add(Random(100 + t, n), Sparse(500 + t, n)));
        _sb = Model("sb", (t, n) => Add(Random(100 + t, n), Sparse(600 + t, n)));
        _sc = Model("sc", (t, n) => Add(Random(100 + t, n), Sparse(700 + t, n)));
        // Heavy-tailed (Laplace) changes: a few stand out, as arcee_fusion's outlier threshold expects.
        _h = Model("h", (t, n) => Add(Random(100 + t, n), Laplace(800 + t, n)));
    }

    public void Dispose() => _dir.Dispose();

    private string Model(string name, Func<int, int, float[]> make)
    {
        var folder = _dir.File(name);
        Directory.CreateDirectory(folder);
        using var w = new SafetensorsWriter(Path.Combine(folder, "model.safetensors"));
        foreach (var (n, s) in Layout) w.AddTensor(n, s, GgmlType.F32);
        for (int i = 0; i < Layout.Length; i++) w.WriteTensor(Layout[i].Name, make(i, (int)Layout[i].Shape.Aggregate(1L, (a, b) => a * b)));
        w.Commit();
        File.WriteAllText(Path.Combine(folder, "config.json"), "{\"model_type\": \"llama\"}");
        return folder;
    }

    private static float[] Add(float[] x, float[] y) => x.Zip(y, (p, q) => p + q).ToArray();
    private static float[] Sparse(int seed, int n)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => r.NextDouble() < 0.33 ? (float)(r.NextDouble() * 2 - 1) * 0.1f : 0f).ToArray();
    }
    private static float[] Laplace(int seed, int n)
    {
        var r = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)((r.NextDouble() < 0.5 ? -1 : 1) * -Math.Log(1 - r.NextDouble()) * 0.02)).ToArray();
    }
    private static Dictionary<string, object> P(params (string, object)[] kv) => kv.ToDictionary(x => x.Item1, x => x.Item2);
    private static double[] D(float[] x) => x.Select(v => (double)v).ToArray();
    private static double Dot(double[] a, double[] b) { double s = 0; for (int i = 0; i < a.Length; i++) s += a[i] * b[i]; return s; }
    private static double Norm(double[] a) => Math.Sqrt(Dot(a, a));
    private static double[] Sub(double[] a, double[] b) => a.Zip(b, (x, y) => x - y).ToArray();
    private static double[] Comb(params (double C, double[] V)[] terms)
    {
        var r = new double[terms[0].V.Length];
        foreach (var (c, v) in terms) for (int i = 0; i < r.Length; i++) r[i] += c * v[i];
        return r;
    }
    private static void Near(double[] expected, float[] actual, double tol = 2e-5)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= tol * (1 + Math.Abs(expected[i])), $"element {i}: expected {expected[i]}, got {actual[i]}");
    }

    private Dictionary<string, float[]> Merge(MergeConfig c, string name) => Run(c, _dir.File(name));

    // ---- nuslerp -------------------------------------------------------------------------------------------

    private static double[] NuSlerpRef(double t, double[] v0, double[] v1)
    {
        double cos = Math.Clamp(Dot(v0, v1) / (Math.Max(Norm(v0), 1e-7) * Math.Max(Norm(v1), 1e-7)), -1, 1);
        double theta = Math.Acos(cos), sin = Math.Sin(theta);
        if (Math.Abs(sin) < 1e-8) return Comb((1 - t, v0), (t, v1));
        return Comb((Math.Sin((1 - t) * theta) / sin, v0), (Math.Sin(t * theta) / sin, v1));
    }

    // Applies f to each vector of a [rows, cols] tensor: the whole (flatten), each row, or each column (row_wise).
    private static double[] PerVector(double[] x, double[] y, long[] shape, string mode, Func<double[], double[], double[]> f)
    {
        int cols = (int)shape[^1], rows = x.Length / cols;
        if (mode == "flatten" || shape.Length == 1) return f(x, y);
        var r = new double[x.Length];
        if (mode == "rows")
            for (int i = 0; i < rows; i++)
                f(x[(i * cols)..((i + 1) * cols)], y[(i * cols)..((i + 1) * cols)]).CopyTo(r, i * cols);
        else
            for (int j = 0; j < cols; j++)
            {
                var res = f(Enumerable.Range(0, rows).Select(i => x[i * cols + j]).ToArray(), Enumerable.Range(0, rows).Select(i => y[i * cols + j]).ToArray());
                for (int i = 0; i < rows; i++) r[i * cols + j] = res[i];
            }
        return r;
    }

    [Theory]
    [InlineData("flatten", false)]
    [InlineData("rows", false)]
    [InlineData("columns", false)]
    [InlineData("flatten", true)]
    [InlineData("columns", true)]
    public void NuSlerpMatchesReference(string mode, bool withBase)
    {
        var c = Cfg("nuslerp", withBase ? _base : null, (_a, P(("weight", 0.3))), (_b, P(("weight", 0.9))))
            .With(("nuslerp_flatten", mode == "flatten"), ("nuslerp_row_wise", mode == "columns"));
        var o = Merge(c, $"nuslerp-{mode}-{withBase}");
        double t = 0.9 / 1.2;
        foreach (var (name, shape) in Layout)
        {
            var x = D(Read(_a, name)); var y = D(Read(_b, name)); var bs = D(Read(_base, name));
            var expected = withBase
                ? Comb((1, bs), (1, PerVector(Sub(x, bs), Sub(y, bs), shape, mode, (p, q) => NuSlerpRef(t, p, q))))
                : PerVector(x, y, shape, mode, (p, q) => NuSlerpRef(t, p, q));
            Near(expected, o[name]);
        }
    }

    // ---- multislerp ----------------------------------------------------------------------------------------

    private static double[] MultiSlerpRef(double[][] v, double[] w, bool normalize, double eps = 1e-8)
    {
        if (normalize) { double s = w.Sum(); w = w.Select(x => x / s).ToArray(); }
        var norms = v.Select(Norm).ToArray();
        var units = v.Select((x, i) => x.Select(e => e / (norms[i] + eps)).ToArray()).ToArray();
        var mean = Comb(units.Select((u, i) => (w[i], u)).ToArray());
        double mn = Norm(mean);
        mean = mean.Select(e => e / mn).ToArray();
        var tangent = Comb(units.Select((u, i) => (w[i], Sub(u, mean.Select(e => e * Dot(u, mean)).ToArray()))).ToArray());
        double tn = Norm(tangent) + eps;
        var res = Comb((Math.Cos(tn), mean), (Math.Sin(tn) / tn, tangent));
        double avg = norms.Select((n, i) => n * w[i]).Sum();
        return res.Select(e => e * avg).ToArray();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void MultiSlerpMatchesReference(bool withBase)
    {
        var c = Cfg("multislerp", withBase ? _base : null, (_a, P(("weight", 0.2))), (_b, P(("weight", 0.5))), (_c, P(("weight", 0.3))));
        var o = Merge(c, $"multislerp-{withBase}");
        foreach (var (name, _) in Layout)
        {
            var bs = D(Read(_base, name));
            var v = new[] { _a, _b, _c }.Select(m => withBase ? Sub(D(Read(m, name)), bs) : D(Read(m, name))).ToArray();
            var r = MultiSlerpRef(v, [0.2, 0.5, 0.3], true);
            Near(withBase ? Comb((1, bs), (1, r)) : r, o[name]);
        }
    }

    // ---- karcher -------------------------------------------------------------------------------------------

    private static double[] KarcherRef(double[][] x, int maxIter = 10, double tol = 1e-5)
    {
        int k = x.Length;
        var norms = x.Select(Norm).ToArray();
        var units = x.Select((v, i) => v.Select(e => e / norms[i]).ToArray()).ToArray();
        double a = 1.0 / k;
        var u = Comb(units.Select(v => (a, v)).ToArray());
        u = u.Select(e => e / Norm(u)).ToArray();
        for (int it = 0; it < maxIter; it++)
        {
            var t = new double[u.Length];
            foreach (var ui in units)
            {
                double dot = Math.Clamp(Dot(u, ui), -1, 1), theta = Math.Acos(dot);
                if (theta < tol) continue;
                t = Comb((1, t), (a * theta / Math.Sin(theta), Sub(ui, u.Select(e => e * dot).ToArray())));
            }
            double nt = Norm(t);
            if (nt < tol) break;
            u = Comb((Math.Cos(nt), u), (Math.Sin(nt) / nt, t));
            double un = Norm(u);
            u = u.Select(e => e / un).ToArray();
        }
        return u.Select(e => e * norms.Sum() / k).ToArray();
    }

    [Fact]
    public void KarcherMatchesReferenceAndCountsTheBase()
    {
        var o = Merge(Cfg("karcher", null, (_a, P()), (_b, P()), (_c, P())), "karcher");
        var withBase = Merge(Cfg("karcher", _base, (_a, P()), (_b, P())).With(("max_iter", 25.0), ("tol", 1e-7)), "karcher-base");
        foreach (var (name, _) in Layout)
        {
            Near(KarcherRef([D(Read(_a, name)), D(Read(_b, name)), D(Read(_c, name))]), o[name]);
            Near(KarcherRef([D(Read(_base, name)), D(Read(_a, name)), D(Read(_b, name))], 25, 1e-7), withBase[name]);
        }
        // One model: that model.
        var one = Merge(Cfg("karcher", null, (_a, P())), "karcher-one");
        Assert.Equal(Read(_a, Layout[0].Name), one[Layout[0].Name]);
    }

    // ---- della ---------------------------------------------------------------------------------------------

    private double[] DellaRef(string name, long[] shape, (string Path, double W, double Density, double Eps)[] models, bool consensus, bool normalize, int seed, double lambda = 1)
    {
        var bs = Read(_base, name);
        int n = bs.Length, rowLen = (int)shape[^1];
        var deltas = new List<double[]>();
        for (int m = 0; m < models.Length; m++)
        {
            var x = Read(models[m].Path, name);
            var d = x.Select((v, j) => (double)(v - bs[j])).ToArray();
            var kept = (double[])d.Clone();
            var stream = ElementRandom.Stream(seed, name, m);
            for (int r0 = 0; r0 < n; r0 += rowLen)
            {
                var order = Enumerable.Range(r0, rowLen).OrderBy(j => Math.Abs((float)d[j])).ThenBy(j => j).ToArray();
                for (int rank = 0; rank < rowLen; rank++)
                {
                    int j = order[rank];
                    double p = models[m].Density - models[m].Eps + 2 * models[m].Eps * rank / (rowLen - 1);
                    if (ElementRandom.Uniform(stream, j) >= p) kept[j] = 0;
                }
            }
            double before = d.Sum(Math.Abs), after = kept.Sum(Math.Abs);
            deltas.Add(kept.Select(v => v * before / after * models[m].W).ToArray());
        }
        var r = new double[n];
        for (int j = 0; j < n; j++)
        {
            double sum = deltas.Sum(d => d[j]), mixed = 0, div = 0;
            for (int m = 0; m < models.Length; m++)
            {
                double x = deltas[m][j];
                if (!consensus || (x != 0 && Math.Sign(x) == (sum >= 0 ? 1 : -1))) { mixed += x; div += models[m].W; }
            }
            if (normalize) mixed /= consensus ? (div == 0 ? 1 : div) : models.Sum(x => x.W);
            r[j] = bs[j] + lambda * mixed;
        }
        return r;
    }

    [Theory]
    [InlineData("della")]
    [InlineData("della_linear")]
    public void DellaMatchesReference(string method)
    {
        (string, double, double, double)[] models = [(_a, 1.0, 0.5, 0.2), (_b, 0.6, 0.4, 0.1), (_c, 0.8, 0.7, 0.15)];
        var c = Cfg(method, _base, models.Select(m => (m.Item1, P(("weight", m.Item2), ("density", m.Item3), ("epsilon", m.Item4)))).ToArray()) with { Seed = 11 };
        var o = Merge(c.With(("lambda", 1.1)), method);
        foreach (var (name, shape) in Layout)
            Near(DellaRef(name, shape, models, method == "della", method == "della", 11, 1.1), o[name], 1e-4);
        // Larger magnitudes survive more often: in a row, the top half of |delta| is kept more than the bottom half.
        var one = Merge(Cfg(method, _base, (_a, P(("weight", 1.0), ("density", 0.5), ("epsilon", 0.4)))).With(("rescale", false)), method + "-one");
        var name0 = Layout[0].Name;
        var bs = Read(_base, name0); var d = Read(_a, name0).Zip(bs, (x, y) => x - y).ToArray();
        var sorted = d.Select(Math.Abs).Order().ToArray();
        float median = sorted[sorted.Length / 2];
        int keptHigh = 0, keptLow = 0;
        for (int j = 0; j < d.Length; j++)
            if (one[name0][j] != bs[j]) { if (Math.Abs(d[j]) >= median) keptHigh++; else keptLow++; }
        Assert.True(keptHigh > keptLow * 2, $"kept {keptHigh} large and {keptLow} small changes");
    }

    [Fact]
    public void DellaRefusesEpsilonThatLeavesTheUnitInterval()
    {
        var c = Cfg("della", _base, (_a, P(("weight", 1.0), ("density", 0.9), ("epsilon", 0.15))));
        var e = Assert.Throws<ConfigException>(() => MergeEngine.Validate(c));
        Assert.Contains("density 0.9 with epsilon 0.15", e.Message);
    }

    // ---- sce -----------------------------------------------------------------------------------------------

    private double[] SceRef(string name, string[] models, double topk)
    {
        var bs = Read(_base, name);
        int n = bs.Length, k = models.Length;
        var tv = models.Select(m => Read(m, name).Zip(bs, (x, y) => x - y).ToArray()).ToArray();
        if (topk < 1)
        {
            var var = new float[n];
            for (int j = 0; j < n; j++)
            {
                float mean = 0; for (int i = 0; i < k; i++) mean += tv[i][j]; mean /= k;
                float v = 0; for (int i = 0; i < k; i++) { float x = tv[i][j] - mean; v += x * x; }
                var[j] = v / k;
            }
            int keep = (int)(var.Count(v => v != 0) * topk);
            var top = Enumerable.Range(0, n).OrderByDescending(j => var[j]).ThenBy(j => j).Take(keep).ToHashSet();
            for (int j = 0; j < n; j++) if (!top.Contains(j)) for (int i = 0; i < k; i++) tv[i][j] = 0;
        }
        var ms = tv.Select(t => t.Sum(x => (double)x * x) / n).ToArray();
        var w = ms.Select(x => x / ms.Sum()).ToArray();
        var r = new double[n];
        for (int j = 0; j < n; j++)
        {
            double sum = tv.Sum(t => (double)t[j]), mixed = 0, div = 0;
            for (int i = 0; i < k; i++)
                if (tv[i][j] != 0 && Math.Sign(tv[i][j]) == (sum >= 0 ? 1 : -1)) { mixed += tv[i][j] * w[i]; div += w[i]; }
            r[j] = bs[j] + mixed / Math.Max(div, 1e-6);
        }
        return r;
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(0.3)]
    public void SceMatchesReference(double topk)
    {
        var o = Merge(Cfg("sce", _base, (_a, P()), (_b, P()), (_c, P())).With(("select_topk", topk)), "sce" + topk);
        foreach (var (name, _) in Layout) Near(SceRef(name, [_a, _b, _c], topk), o[name], 1e-4);
    }

    // ---- ram / ramplus_tl ----------------------------------------------------------------------------------

    private double[] RamRef(string name, string[] models, bool plus, double eps = 1e-5, double r = 0.1, double alpha = 0.2)
    {
        var bs = Read(_base, name);
        int n = bs.Length, k = models.Length;
        var tv = models.Select(m => Read(m, name).Zip(bs, (x, y) => x - y).ToArray()).ToArray();
        var count = Enumerable.Range(0, n).Select(j => tv.Count(t => Math.Abs(t[j]) > eps)).ToArray();
        var lambda = Enumerable.Range(0, k).Select(i =>
        {
            if (!plus) return 1.0;
            int shared = Enumerable.Range(0, n).Count(j => Math.Abs(tv[i][j]) > eps && count[j] > 1);
            int unique = Enumerable.Range(0, n).Count(j => Math.Abs(tv[i][j]) > eps && count[j] == 1);
            return 1 + r * Math.Clamp(shared / Math.Max(unique, eps), 0, alpha);
        }).ToArray();
        return Enumerable.Range(0, n).Select(j => bs[j] + Enumerable.Range(0, k).Where(i => Math.Abs(tv[i][j]) > eps)
            .Sum(i => count[j] == 1 ? tv[i][j] * lambda[i] : tv[i][j] / (double)count[j])).ToArray();
    }

    [Theory]
    [InlineData("ram")]
    [InlineData("ramplus_tl")]
    public void RamMatchesReference(string method)
    {
        var o = Merge(Cfg(method, _base, (_sa, P()), (_sb, P()), (_sc, P())), method);
        foreach (var (name, _) in Layout)
        {
            var expected = RamRef(name, [_sa, _sb, _sc], method == "ramplus_tl");
            Near(expected, o[name]);
            // Unique changes come through whole (RAM) or amplified (RAM+), shared ones averaged.
            Assert.Contains(Enumerable.Range(0, expected.Length), j => expected[j] != Read(_base, name)[j]);
        }
        if (method == "ramplus_tl")
        {
            var strong = Merge(Cfg(method, _base, (_sa, P()), (_sb, P())).With(("r", 0.5), ("alpha", 1.0), ("epsilon", 0.01)), method + "-params");
            foreach (var (name, _) in Layout) Near(RamRef(name, [_sa, _sb], true, 0.01, 0.5, 1.0), strong[name]);
        }
    }

    // ---- nearswap ------------------------------------------------------------------------------------------

    [Fact]
    public void NearswapMatchesReference()
    {
        var o = Merge(Cfg("nearswap", _base, (_a, P())).With(("t", 0.05)), "nearswap");
        foreach (var (name, _) in Layout)
        {
            var a = Read(_base, name); var b = Read(_a, name);
            Near(a.Select((x, j) => { double w = Math.Clamp(0.05 / Math.Max(Math.Abs(x - b[j]), 1e-6), 0, 1); return w * b[j] + (1 - w) * x; }).ToArray(), o[name]);
        }
    }

    // ---- arcee_fusion --------------------------------------------------------------------------------------

    [Fact]
    public void ArceeFusionMatchesReference()
    {
        var o = Merge(Cfg("arcee_fusion", _base, (_h, P())), "fusion");
        foreach (var (name, shape) in Layout)
        {
            var bs = Read(_base, name); var x = Read(_h, name);
            int rowLen = (int)shape[^1], n = bs.Length;
            // Importances in double precision (the method computes them in single precision).
            var imp = new double[n];
            for (int r0 = 0; r0 < n; r0 += rowLen)
            {
                double[] Soft(float[] v) { var e = v.Skip(r0).Take(rowLen).Select(z => Math.Exp(z)).ToArray(); double s = e.Sum(); return e.Select(z => z / s + 1e-8).ToArray(); }
                var p = Soft(x); var q = Soft(bs);
                double kl = p.Zip(q, (a, b) => a * Math.Log(a / b)).Sum();
                for (int j = r0; j < r0 + rowLen; j++) imp[j] = Math.Abs((double)x[j] - bs[j]) * kl;
            }
            var sorted = imp.Order().ToArray();
            double Q(double q) => sorted[(int)(q * (n - 1))];
            double threshold = Q(0.5) + 1.5 * (Q(0.75) - Q(0.25));
            var expected = bs.Select((v, j) => imp[j] >= threshold ? (double)(v + (x[j] - v)) : v).ToArray();
            int changed = expected.Where((v, j) => v != bs[j]).Count();
            Assert.InRange(changed, 1, n / 2);
            // Single-precision KL is good to about 1e-4 relative here (its terms cancel), which moves importances and the
            // threshold alike: an element that close to the threshold may go either way, and only those few may differ.
            int edge = 0;
            for (int j = 0; j < n; j++)
            {
                if (Math.Abs(imp[j] - threshold) <= 1e-3 * threshold) { edge++; continue; }
                Assert.True(Math.Abs(expected[j] - o[name][j]) <= 1e-6 * (1 + Math.Abs(expected[j])), $"{name} element {j}: expected {expected[j]}, got {o[name][j]} (importance {imp[j]:G6}, threshold {threshold:G6})");
            }
            Assert.True(edge <= Math.Max(3, n / 200), $"{name}: {edge} of {n} importances within 1e-3 of the threshold");
        }
    }

    [Theory]
    [InlineData(16)]
    [InlineData(17)]
    [InlineData(97)]
    [InlineData(160)]
    [InlineData(4099)]
    public void RowKlMatchesADoublePrecisionComputation(int n)
    {
        var r = new Random(n);
        var p = Enumerable.Range(0, n).Select(_ => (float)(r.NextDouble() * 4 - 2)).ToArray();
        var q = p.Select(z => z + (float)((r.NextDouble() - 0.5) * 0.1)).ToArray();
        double[] Soft(float[] v) { double mx = v.Max(); var e = v.Select(z => Math.Exp(z - mx)).ToArray(); double s = e.Sum(); return e.Select(z => z / s + 1e-8).ToArray(); }
        var a = Soft(p); var b = Soft(q);
        double expected = a.Zip(b, (u, w) => u * Math.Log(u / w)).Sum();
        Assert.InRange(ArceeFusionMerge.RowKl(p, q), expected * (1 - 1e-3), expected * (1 + 1e-3));
    }

    // ---- both paths ----------------------------------------------------------------------------------------

    public static TheoryData<string> Methods => new()
    {
        "nuslerp", "nuslerp_rows", "nuslerp_columns", "multislerp", "karcher", "della", "della_linear", "sce", "sce_topk", "ram", "ramplus_tl", "nearswap", "arcee_fusion",
    };

    private MergeConfig Config(string method) => method switch
    {
        "nuslerp" => Cfg("nuslerp", _base, (_a, P(("weight", 0.4))), (_b, P(("weight", 0.6)))),
        "nuslerp_rows" => Cfg("nuslerp", null, (_a, P(("weight", 0.4))), (_b, P(("weight", 0.6)))).With(("nuslerp_flatten", false)),
        "nuslerp_columns" => Cfg("nuslerp", null, (_a, P(("weight", 0.4))), (_b, P(("weight", 0.6)))).With(("nuslerp_flatten", false), ("nuslerp_row_wise", true)),
        "multislerp" => Cfg("multislerp", _base, (_a, P(("weight", 1.0))), (_b, P(("weight", 2.0))), (_c, P(("weight", 1.0)))),
        "karcher" => Cfg("karcher", null, (_a, P()), (_b, P()), (_c, P())),
        "della" or "della_linear" => Cfg(method, _base, (_a, P(("weight", 1.0), ("density", 0.5))), (_b, P(("weight", 0.7), ("density", 0.6)))),
        "sce" => Cfg("sce", _base, (_a, P()), (_b, P())),
        "sce_topk" => Cfg("sce", _base, (_a, P()), (_b, P()), (_c, P())).With(("select_topk", 0.4)),
        "ram" or "ramplus_tl" => Cfg(method, _base, (_sa, P()), (_sb, P()), (_sc, P())),
        "nearswap" => Cfg("nearswap", _base, (_a, P())).With(("t", 0.02)),
        "arcee_fusion" => Cfg("arcee_fusion", _base, (_h, P())),
        _ => throw new ArgumentException(method),
    };

    [Theory]
    [MemberData(nameof(Methods))]
    public void InMemoryAndStreamingOutputsAreByteIdentical(string method)
    {
        var c = Config(method);
        MergeEngine.Validate(c);
        MergeEngine.Run(c, _dir.File(method + "-stream"), chunkElements: 64, memoryBudgetBytes: 0);
        MergeEngine.Run(c, _dir.File(method + "-memory"));
        MergeEngine.Run(c, _dir.File(method + "-3"), parallelism: 3);
        var expected = File.ReadAllBytes(_dir.File(method + "-stream/model.safetensors"));
        Assert.Equal(expected, File.ReadAllBytes(_dir.File(method + "-memory/model.safetensors")));
        Assert.Equal(expected, File.ReadAllBytes(_dir.File(method + "-3/model.safetensors")));
    }
}
