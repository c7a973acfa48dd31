using System.Numerics.Tensors;

namespace Consort.Methods.Api.Routing;

/// <summary>A row-major float matrix with a gradient, the value type of <see cref="Tape"/>.</summary>
internal sealed class Var
{
    public Var(int rows, int cols, float[]? value = null)
    {
        if (value is not null && value.Length != rows * cols) throw new ArgumentException($"expected {rows}x{cols} values, got {value.Length}");
        Rows = rows; Cols = cols; Value = value ?? new float[rows * cols];
    }

    public int Rows { get; }
    public int Cols { get; }
    public float[] Value { get; }
    public float[]? Grad { get; set; }

    public Span<float> Row(int r) => Value.AsSpan(r * Cols, Cols);
    public float[] G => Grad ??= new float[Value.Length];
    public float Scalar => Value[0];
}

/// <summary>
/// Reverse-mode differentiation over small matrices, enough for the routers (linear layers, message passing,
/// batch norm, BCE/MSE). Operations record their backward step; <see cref="Backward"/> runs them in reverse.
/// Single-threaded and allocation-heavy by design: router training sets have hundreds of rows.
/// </summary>
internal sealed class Tape
{
    private readonly List<Action> _steps = [];

    /// <summary>When false nothing is recorded (inference).</summary>
    public bool Recording { get; set; } = true;

    private Var Rec(Var output, Action backward)
    {
        if (Recording) _steps.Add(backward);
        return output;
    }

    /// <summary>Back-propagates from a 1x1 loss, then forgets the recorded steps.</summary>
    public void Backward(Var loss)
    {
        if (loss.Value.Length != 1) throw new ArgumentException("loss must be a scalar");
        loss.G[0] = 1;
        for (int i = _steps.Count - 1; i >= 0; i--) _steps[i]();
        _steps.Clear();
    }

    public Var MatMul(Var a, Var b)
    {
        if (a.Cols != b.Rows) throw new ArgumentException($"matmul {a.Rows}x{a.Cols} by {b.Rows}x{b.Cols}");
        var c = new Var(a.Rows, b.Cols);
        for (int i = 0; i < a.Rows; i++)
        {
            var ci = c.Row(i);
            for (int p = 0; p < a.Cols; p++)
            {
                float x = a.Value[i * a.Cols + p];
                if (x != 0) TensorPrimitives.MultiplyAdd(b.Row(p), x, ci, ci);
            }
        }
        return Rec(c, () =>
        {
            if (c.Grad is null) return;
            var ga = a.G; var gb = b.G;
            for (int i = 0; i < a.Rows; i++)
            {
                var gci = c.Grad.AsSpan(i * c.Cols, c.Cols);
                for (int p = 0; p < a.Cols; p++)
                {
                    ga[i * a.Cols + p] += TensorPrimitives.Dot(gci, b.Row(p));
                    float x = a.Value[i * a.Cols + p];
                    if (x != 0) { var gbp = gb.AsSpan(p * b.Cols, b.Cols); TensorPrimitives.MultiplyAdd(gci, x, gbp, gbp); }
                }
            }
        });
    }

    /// <summary>Adds a 1 x cols row to every row.</summary>
    public Var AddRow(Var a, Var row)
    {
        if (row.Rows != 1 || row.Cols != a.Cols) throw new ArgumentException("bias shape");
        var c = new Var(a.Rows, a.Cols);
        for (int i = 0; i < a.Rows; i++) TensorPrimitives.Add(a.Row(i), row.Value, c.Row(i));
        return Rec(c, () =>
        {
            if (c.Grad is null) return;
            var ga = a.G; var gr = row.G;
            TensorPrimitives.Add(ga, c.Grad, ga);
            for (int i = 0; i < a.Rows; i++) TensorPrimitives.Add(gr, c.Grad.AsSpan(i * c.Cols, c.Cols), gr);
        });
    }

    public Var Linear(Var x, Var w, Var? b) => b is null ? MatMul(x, w) : AddRow(MatMul(x, w), b);

    public Var Add(Var a, Var b) => Binary(a, b, (x, y) => x + y, (x, y, g) => (g, g));
    public Var Sub(Var a, Var b) => Binary(a, b, (x, y) => x - y, (x, y, g) => (g, -g));
    public Var Mul(Var a, Var b) => Binary(a, b, (x, y) => x * y, (x, y, g) => (g * y, g * x));

    private Var Binary(Var a, Var b, Func<float, float, float> f, Func<float, float, float, (float, float)> df)
    {
        if (a.Rows != b.Rows || a.Cols != b.Cols) throw new ArgumentException($"shapes {a.Rows}x{a.Cols} and {b.Rows}x{b.Cols}");
        var c = new Var(a.Rows, a.Cols);
        for (int i = 0; i < c.Value.Length; i++) c.Value[i] = f(a.Value[i], b.Value[i]);
        return Rec(c, () =>
        {
            if (c.Grad is null) return;
            var ga = a.G; var gb = b.G;
            for (int i = 0; i < c.Value.Length; i++)
            {
                var (da, db) = df(a.Value[i], b.Value[i], c.Grad[i]);
                ga[i] += da; gb[i] += db;
            }
        });
    }

    public Var Relu(Var a) => Unary(a, x => x > 0 ? x : 0, (x, y) => x > 0 ? 1 : 0);
    public Var Sigmoid(Var a) => Unary(a, x => 1f / (1f + MathF.Exp(-x)), (x, y) => y * (1 - y));
    public Var Scale(Var a, float s) => Unary(a, x => x * s, (x, y) => s);

    private Var Unary(Var a, Func<float, float> f, Func<float, float, float> df)
    {
        var c = new Var(a.Rows, a.Cols);
        for (int i = 0; i < c.Value.Length; i++) c.Value[i] = f(a.Value[i]);
        return Rec(c, () =>
        {
            if (c.Grad is null) return;
            var ga = a.G;
            for (int i = 0; i < c.Value.Length; i++) ga[i] += c.Grad[i] * df(a.Value[i], c.Value[i]);
        });
    }

    /// <summary>Rows of <paramref name="a"/> picked by index (repeats allowed).</summary>
    public Var Gather(Var a, IReadOnlyList<int> rows)
    {
        var c = new Var(rows.Count, a.Cols);
        for (int i = 0; i < rows.Count; i++) a.Row(rows[i]).CopyTo(c.Row(i));
        return Rec(c, () =>
        {
            if (c.Grad is null) return;
            var ga = a.G;
            for (int i = 0; i < rows.Count; i++)
            {
                var dst = ga.AsSpan(rows[i] * a.Cols, a.Cols);
                TensorPrimitives.Add(dst, c.Grad.AsSpan(i * c.Cols, c.Cols), dst);
            }
        });
    }

    /// <summary>Sums row i of <paramref name="a"/> into row <c>targets[i]</c> of a <paramref name="count"/>-row result.</summary>
    public Var ScatterAdd(Var a, IReadOnlyList<int> targets, int count)
    {
        if (targets.Count != a.Rows) throw new ArgumentException("one target per row");
        var c = new Var(count, a.Cols);
        for (int i = 0; i < a.Rows; i++) { var dst = c.Row(targets[i]); TensorPrimitives.Add(dst, a.Row(i), dst); }
        return Rec(c, () =>
        {
            if (c.Grad is null) return;
            var ga = a.G;
            for (int i = 0; i < a.Rows; i++)
            {
                var dst = ga.AsSpan(i * a.Cols, a.Cols);
                TensorPrimitives.Add(dst, c.Grad.AsSpan(targets[i] * c.Cols, c.Cols), dst);
            }
        });
    }

    public Var ConcatCols(Var a, Var b)
    {
        if (a.Rows != b.Rows) throw new ArgumentException("row counts differ");
        var c = new Var(a.Rows, a.Cols + b.Cols);
        for (int i = 0; i < a.Rows; i++) { a.Row(i).CopyTo(c.Row(i)); b.Row(i).CopyTo(c.Row(i)[a.Cols..]); }
        return Rec(c, () =>
        {
            if (c.Grad is null) return;
            var ga = a.G; var gb = b.G;
            for (int i = 0; i < a.Rows; i++)
            {
                var gci = c.Grad.AsSpan(i * c.Cols, c.Cols);
                var da = ga.AsSpan(i * a.Cols, a.Cols); TensorPrimitives.Add(da, gci[..a.Cols], da);
                var db = gb.AsSpan(i * b.Cols, b.Cols); TensorPrimitives.Add(db, gci[a.Cols..], db);
            }
        });
    }

    public Var ConcatRows(Var a, Var b)
    {
        if (a.Cols != b.Cols) throw new ArgumentException("column counts differ");
        var c = new Var(a.Rows + b.Rows, a.Cols);
        a.Value.CopyTo(c.Value, 0); b.Value.CopyTo(c.Value, a.Value.Length);
        return Rec(c, () =>
        {
            if (c.Grad is null) return;
            var ga = a.G; var gb = b.G;
            TensorPrimitives.Add(ga, c.Grad.AsSpan(0, ga.Length), ga);
            TensorPrimitives.Add(gb, c.Grad.AsSpan(ga.Length, gb.Length), gb);
        });
    }

    /// <summary>Each row divided by its L2 norm (rows of zeros stay zero).</summary>
    public Var RowNormalize(Var a)
    {
        var c = new Var(a.Rows, a.Cols);
        var norms = new float[a.Rows];
        for (int i = 0; i < a.Rows; i++)
        {
            norms[i] = MathF.Max(TensorPrimitives.Norm(a.Row(i)), 1e-12f);
            TensorPrimitives.Divide(a.Row(i), norms[i], c.Row(i));
        }
        return Rec(c, () =>
        {
            if (c.Grad is null) return;
            var ga = a.G;
            for (int i = 0; i < a.Rows; i++)
            {
                var g = c.Grad.AsSpan(i * c.Cols, c.Cols); var y = c.Row(i);
                float dot = TensorPrimitives.Dot(g, y);
                for (int k = 0; k < a.Cols; k++) ga[i * a.Cols + k] += (g[k] - dot * y[k]) / norms[i];
            }
        });
    }

    /// <summary>Mean over each row's columns: rows x 1.</summary>
    public Var RowMean(Var a)
    {
        var c = new Var(a.Rows, 1);
        for (int i = 0; i < a.Rows; i++) c.Value[i] = TensorPrimitives.Sum(a.Row(i)) / a.Cols;
        return Rec(c, () =>
        {
            if (c.Grad is null) return;
            var ga = a.G;
            for (int i = 0; i < a.Rows; i++)
            {
                float g = c.Grad[i] / a.Cols;
                for (int k = 0; k < a.Cols; k++) ga[i * a.Cols + k] += g;
            }
        });
    }

    /// <summary>Batch normalization over rows (training mode: batch statistics, which also update the running ones).</summary>
    public Var BatchNorm(Var a, BatchNormState s, bool training)
    {
        int n = a.Rows, d = a.Cols;
        var c = new Var(n, d);
        var mean = new float[d]; var inv = new float[d];
        if (training && n > 1)
        {
            for (int i = 0; i < n; i++) TensorPrimitives.Add(mean, a.Row(i), mean);
            TensorPrimitives.Divide(mean, n, mean);
            var variance = new float[d];
            for (int i = 0; i < n; i++)
                for (int k = 0; k < d; k++) { float x = a.Value[i * d + k] - mean[k]; variance[k] += x * x; }
            for (int k = 0; k < d; k++)
            {
                inv[k] = 1f / MathF.Sqrt(variance[k] / n + s.Epsilon);
                s.RunningMean[k] = (1 - s.Momentum) * s.RunningMean[k] + s.Momentum * mean[k];
                s.RunningVar[k] = (1 - s.Momentum) * s.RunningVar[k] + s.Momentum * variance[k] / (n - 1);
            }
        }
        else
        {
            s.RunningMean.CopyTo(mean, 0);
            for (int k = 0; k < d; k++) inv[k] = 1f / MathF.Sqrt(s.RunningVar[k] + s.Epsilon);
        }
        var xhat = new float[n * d];
        for (int i = 0; i < n; i++)
            for (int k = 0; k < d; k++)
            {
                xhat[i * d + k] = (a.Value[i * d + k] - mean[k]) * inv[k];
                c.Value[i * d + k] = xhat[i * d + k] * s.Gamma.Value[k] + s.Beta.Value[k];
            }
        bool batchStats = training && n > 1;
        return Rec(c, () =>
        {
            if (c.Grad is null) return;
            var ga = a.G; var gg = s.Gamma.G; var gbeta = s.Beta.G;
            var sumG = new float[d]; var sumGx = new float[d];
            for (int i = 0; i < n; i++)
                for (int k = 0; k < d; k++)
                {
                    float g = c.Grad[i * d + k];
                    gg[k] += g * xhat[i * d + k]; gbeta[k] += g;
                    float gx = g * s.Gamma.Value[k];
                    sumG[k] += gx; sumGx[k] += gx * xhat[i * d + k];
                }
            for (int i = 0; i < n; i++)
                for (int k = 0; k < d; k++)
                {
                    float gx = c.Grad[i * d + k] * s.Gamma.Value[k];
                    ga[i * d + k] += batchStats
                        ? inv[k] * (gx - sumG[k] / n - xhat[i * d + k] * sumGx[k] / n)
                        : gx * inv[k];
                }
        });
    }

    /// <summary>Mean binary cross-entropy of sigmoid(<paramref name="logits"/>) against targets in [0, 1].</summary>
    public Var BceWithLogits(Var logits, IReadOnlyList<float> targets)
    {
        if (targets.Count != logits.Value.Length) throw new ArgumentException("one target per logit");
        int n = targets.Count;
        var loss = new Var(1, 1);
        double sum = 0;
        for (int i = 0; i < n; i++)
        {
            float z = logits.Value[i], t = targets[i];
            // max(z,0) - z t + log(1 + e^-|z|): stable for large |z|.
            sum += MathF.Max(z, 0) - z * t + MathF.Log(1 + MathF.Exp(-MathF.Abs(z)));
        }
        loss.Value[0] = (float)(sum / n);
        return Rec(loss, () =>
        {
            var g = logits.G; float scale = loss.G[0] / n;
            for (int i = 0; i < n; i++) g[i] += scale * (1f / (1f + MathF.Exp(-logits.Value[i])) - targets[i]);
        });
    }

    /// <summary>Mean squared error against targets (same layout as the prediction).</summary>
    public Var Mse(Var prediction, IReadOnlyList<float> targets)
    {
        if (targets.Count != prediction.Value.Length) throw new ArgumentException("one target per value");
        int n = targets.Count;
        var loss = new Var(1, 1);
        double sum = 0;
        for (int i = 0; i < n; i++) { float e = prediction.Value[i] - targets[i]; sum += e * e; }
        loss.Value[0] = (float)(sum / n);
        return Rec(loss, () =>
        {
            var g = prediction.G; float scale = 2 * loss.G[0] / n;
            for (int i = 0; i < n; i++) g[i] += scale * (prediction.Value[i] - targets[i]);
        });
    }
}

/// <summary>Learned scale and shift plus running statistics of one batch-norm layer.</summary>
internal sealed class BatchNormState
{
    public BatchNormState(int dim)
    {
        Gamma = new Var(1, dim); Array.Fill(Gamma.Value, 1f);
        Beta = new Var(1, dim);
        RunningMean = new float[dim];
        RunningVar = new float[dim]; Array.Fill(RunningVar, 1f);
    }

    public Var Gamma { get; }
    public Var Beta { get; }
    public float[] RunningMean { get; }
    public float[] RunningVar { get; }
    public float Momentum { get; init; } = 0.1f;
    public float Epsilon { get; init; } = 1e-5f;
}

/// <summary>Adam (L2 weight decay added to the gradient, as torch's Adam does) or AdamW (decoupled decay).</summary>
internal sealed class Adam(IReadOnlyList<Var> parameters, float learningRate, float weightDecay = 0, bool decoupled = false)
{
    private readonly float[][] _m = parameters.Select(p => new float[p.Value.Length]).ToArray();
    private readonly float[][] _v = parameters.Select(p => new float[p.Value.Length]).ToArray();
    private int _t;
    private const float Beta1 = 0.9f, Beta2 = 0.999f, Eps = 1e-8f;

    public void ZeroGrad()
    {
        foreach (var p in parameters) if (p.Grad is not null) Array.Clear(p.Grad);
    }

    public void Step()
    {
        _t++;
        float c1 = 1 - MathF.Pow(Beta1, _t), c2 = 1 - MathF.Pow(Beta2, _t);
        for (int j = 0; j < parameters.Count; j++)
        {
            var p = parameters[j]; if (p.Grad is null) continue;
            var m = _m[j]; var v = _v[j];
            for (int i = 0; i < p.Value.Length; i++)
            {
                float g = p.Grad[i];
                if (decoupled) p.Value[i] -= learningRate * weightDecay * p.Value[i];
                else g += weightDecay * p.Value[i];
                m[i] = Beta1 * m[i] + (1 - Beta1) * g;
                v[i] = Beta2 * v[i] + (1 - Beta2) * g * g;
                p.Value[i] -= learningRate * (m[i] / c1) / (MathF.Sqrt(v[i] / c2) + Eps);
            }
        }
    }
}

/// <summary>Seeded parameter initialisation (torch's defaults: uniform ±1/sqrt(fan_in) for linear layers, N(0,1) for embeddings).</summary>
internal sealed class Init(int seed)
{
    private readonly Random _random = new(seed);

    public Random Random => _random;

    public Var Uniform(int rows, int cols, float bound)
    {
        var v = new Var(rows, cols);
        for (int i = 0; i < v.Value.Length; i++) v.Value[i] = (float)((_random.NextDouble() * 2 - 1) * bound);
        return v;
    }

    /// <summary>Weight of a linear layer in -> out, stored in x out so that y = x W.</summary>
    public Var LinearWeight(int fanIn, int fanOut) => Uniform(fanIn, fanOut, 1f / MathF.Sqrt(fanIn));
    public Var LinearBias(int fanIn, int fanOut) => Uniform(1, fanOut, 1f / MathF.Sqrt(fanIn));

    public Var Normal(int rows, int cols, float std = 1)
    {
        var v = new Var(rows, cols);
        for (int i = 0; i < v.Value.Length; i++) v.Value[i] = Gaussian() * std;
        return v;
    }

    public float Gaussian()
    {
        double u1 = 1 - _random.NextDouble(), u2 = _random.NextDouble();
        return (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
    }
}
