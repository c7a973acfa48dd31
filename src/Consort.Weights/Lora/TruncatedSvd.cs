using System.Numerics.Tensors;

namespace Consort.Weights.Lora;

/// <summary>The leading singular triplets of a matrix: M ≈ U diag(S) Vᵀ.</summary>
/// <param name="U">Left vectors, [m, k] row-major.</param>
/// <param name="S">Singular values, descending, k of them.</param>
/// <param name="V">Right vectors, [n, k] row-major.</param>
/// <param name="FrobeniusSquared">‖M‖²_F (the sum of all squared singular values, for energy fractions).</param>
public sealed record SvdResult(double[] U, double[] S, double[] V, double FrobeniusSquared)
{
    /// <summary>Number of triplets.</summary>
    public int Rank => S.Length;
}

/// <summary>
/// Truncated SVD of a dense float matrix. Small matrices (shorter side up to <see cref="ExactLimit"/>) are decomposed
/// exactly through the eigenvectors of their smaller Gram matrix (Jacobi, in double). Larger ones use a seeded
/// randomized range finder (Halko, Martinsson and Tropp: k + 10 Gaussian probes, two power iterations with
/// re-orthonormalization), whose leading triplets are then exact within the found range.
/// </summary>
public static class TruncatedSvd
{
    /// <summary>Largest shorter side decomposed exactly.</summary>
    public const int ExactLimit = 256;

    /// <summary>The leading <paramref name="k"/> triplets of <paramref name="m"/> ([rows, cols] row-major).</summary>
    public static SvdResult Compute(float[] m, int rows, int cols, int k, int seed = 0)
    {
        if (m.Length != (long)rows * cols) throw new ArgumentException("matrix size does not match its shape");
        k = Math.Max(0, Math.Min(k, Math.Min(rows, cols)));
        double fro = VectorMath(m);
        if (k == 0) return new SvdResult([], [], [], fro);
        return Math.Min(rows, cols) <= ExactLimit ? Exact(m, rows, cols, k, fro) : Randomized(m, rows, cols, k, seed, fro);
    }

    private static double VectorMath(float[] m) => Engine.VectorMath.SumSquares(m);

    // Eigenvectors of the smaller Gram matrix: rows ≤ cols: M Mᵀ = U S² Uᵀ, V = Mᵀ U / S (and the mirror case).
    private static SvdResult Exact(float[] m, int rows, int cols, int k, double fro)
    {
        bool wide = rows <= cols;
        int p = wide ? rows : cols, q = wide ? cols : rows;
        // Vectors of the long side as rows (length q): M's rows when wide, else its columns.
        var lines = new float[p][];
        for (int i = 0; i < p; i++)
        {
            lines[i] = new float[q];
            if (wide) m.AsSpan(i * cols, cols).CopyTo(lines[i]);
            else for (int j = 0; j < q; j++) lines[i][j] = m[j * cols + i];
        }
        var g = new double[p, p];
        for (int i = 0; i < p; i++)
            for (int j = i; j < p; j++) g[i, j] = g[j, i] = Engine.VectorMath.Dot(lines[i], lines[j]);
        var (values, vectors) = SymmetricEigen(g);
        var order = Enumerable.Range(0, p).OrderByDescending(i => values[i]).Take(k).ToArray();
        var s = order.Select(i => Math.Sqrt(Math.Max(0, values[i]))).ToArray();
        var shortVec = new double[p * k]; // the short side's vectors, [p, k]
        for (int c = 0; c < k; c++)
            for (int i = 0; i < p; i++) shortVec[i * k + c] = vectors[i, order[c]];
        var longVec = new double[q * k]; // long side: Σ_i line_i · v_i / s
        for (int c = 0; c < k; c++)
        {
            if (s[c] <= 0) continue;
            for (int i = 0; i < p; i++)
            {
                double f = shortVec[i * k + c] / s[c];
                if (f == 0) continue;
                var line = lines[i];
                for (int j = 0; j < q; j++) longVec[j * k + c] += f * line[j];
            }
        }
        return wide ? new SvdResult(shortVec, s, longVec, fro) : new SvdResult(longVec, s, shortVec, fro);
    }

    private static SvdResult Randomized(float[] m, int rows, int cols, int k, int seed, double fro)
    {
        int l = Math.Min(k + 10, Math.Min(rows, cols));
        var rng = new Random(seed);
        // Y = M Ω with Ω [cols, l] Gaussian; kept as l column vectors of length rows.
        var omega = Enumerable.Range(0, l).Select(_ => Enumerable.Range(0, cols).Select(_ => (float)Gaussian(rng)).ToArray()).ToArray();
        var y = Times(m, rows, cols, omega);
        Orthonormalize(y);
        for (int it = 0; it < 2; it++)
        {
            var z = TransposeTimes(m, rows, cols, y);
            Orthonormalize(z);
            y = Times(m, rows, cols, z);
            Orthonormalize(y);
        }
        // B = Qᵀ M as l rows of length cols; its small SVD through B Bᵀ.
        var b = TransposeTimes(m, rows, cols, y);
        var g = new double[l, l];
        for (int i = 0; i < l; i++)
            for (int j = i; j < l; j++) g[i, j] = g[j, i] = Engine.VectorMath.Dot(b[i], b[j]);
        var (values, vectors) = SymmetricEigen(g);
        var order = Enumerable.Range(0, l).OrderByDescending(i => values[i]).Take(k).ToArray();
        var s = order.Select(i => Math.Sqrt(Math.Max(0, values[i]))).ToArray();
        var u = new double[rows * k];
        var v = new double[cols * k];
        for (int c = 0; c < k; c++)
            for (int i = 0; i < l; i++)
            {
                double w = vectors[i, order[c]];
                if (w == 0) continue;
                for (int r = 0; r < rows; r++) u[r * k + c] += w * y[i][r];
                if (s[c] > 0) for (int j = 0; j < cols; j++) v[j * k + c] += w * b[i][j] / s[c];
            }
        return new SvdResult(u, s, v, fro);
    }

    private static double Gaussian(Random r) => Math.Sqrt(-2 * Math.Log(1 - r.NextDouble())) * Math.Cos(2 * Math.PI * r.NextDouble());

    // M x_i for column vectors x_i of length cols → vectors of length rows.
    private static float[][] Times(float[] m, int rows, int cols, float[][] x)
    {
        var y = x.Select(_ => new float[rows]).ToArray();
        Parallel.For(0, rows, r =>
        {
            var row = m.AsSpan(r * cols, cols);
            for (int i = 0; i < x.Length; i++) y[i][r] = TensorPrimitives.Dot(row, x[i]);
        });
        return y;
    }

    // Mᵀ y_i for vectors y_i of length rows → vectors of length cols.
    private static float[][] TransposeTimes(float[] m, int rows, int cols, float[][] y)
    {
        var z = y.Select(_ => new float[cols]).ToArray();
        Parallel.For(0, y.Length, i =>
        {
            for (int r = 0; r < rows; r++)
                if (y[i][r] != 0) TensorPrimitives.MultiplyAdd(m.AsSpan(r * cols, cols), y[i][r], z[i], z[i]);
        });
        return z;
    }

    // Modified Gram-Schmidt, twice for stability; vectors that vanish stay zero.
    private static void Orthonormalize(float[][] v)
    {
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i < v.Length; i++)
            {
                for (int j = 0; j < i; j++)
                {
                    float d = TensorPrimitives.Dot(v[i], v[j]);
                    if (d != 0) TensorPrimitives.MultiplyAdd(v[j], -d, v[i], v[i]);
                }
                double n = Math.Sqrt(Engine.VectorMath.SumSquares(v[i]));
                if (n > 1e-30) TensorPrimitives.Divide(v[i], (float)n, v[i]); else Array.Clear(v[i]);
            }
    }

    /// <summary>
    /// Eigenvalues and eigenvectors (columns) of a symmetric matrix: Householder reduction to tridiagonal form, then the
    /// implicit QL algorithm (the classic tred2 / tql2 pair), O(n³) in double precision.
    /// </summary>
    public static (double[] Values, double[,] Vectors) SymmetricEigen(double[,] a)
    {
        int n = a.GetLength(0);
        var v = new double[n][];
        for (int i = 0; i < n; i++) { v[i] = new double[n]; for (int j = 0; j < n; j++) v[i][j] = a[i, j]; }
        var d = new double[n]; var e = new double[n];
        if (n > 0) { Tridiagonalize(v, d, e); Ql(v, d, e); }
        var vectors = new double[n, n];
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) vectors[i, j] = v[i][j];
        return (d, vectors);
    }

    private static void Tridiagonalize(double[][] v, double[] d, double[] e)
    {
        int n = d.Length;
        for (int j = 0; j < n; j++) d[j] = v[n - 1][j];
        for (int i = n - 1; i > 0; i--)
        {
            double scale = 0, h = 0;
            for (int k = 0; k < i; k++) scale += Math.Abs(d[k]);
            if (scale == 0)
            {
                e[i] = d[i - 1];
                for (int j = 0; j < i; j++) { d[j] = v[i - 1][j]; v[i][j] = 0; v[j][i] = 0; }
            }
            else
            {
                for (int k = 0; k < i; k++) { d[k] /= scale; h += d[k] * d[k]; }
                double f = d[i - 1], g = Math.Sqrt(h);
                if (f > 0) g = -g;
                e[i] = scale * g;
                h -= f * g;
                d[i - 1] = f - g;
                for (int j = 0; j < i; j++) e[j] = 0;
                for (int j = 0; j < i; j++)
                {
                    f = d[j];
                    v[j][i] = f;
                    g = e[j] + v[j][j] * f;
                    for (int k = j + 1; k <= i - 1; k++) { g += v[k][j] * d[k]; e[k] += v[k][j] * f; }
                    e[j] = g;
                }
                f = 0;
                for (int j = 0; j < i; j++) { e[j] /= h; f += e[j] * d[j]; }
                double hh = f / (h + h);
                for (int j = 0; j < i; j++) e[j] -= hh * d[j];
                for (int j = 0; j < i; j++)
                {
                    f = d[j]; g = e[j];
                    for (int k = j; k <= i - 1; k++) v[k][j] -= f * e[k] + g * d[k];
                    d[j] = v[i - 1][j];
                    v[i][j] = 0;
                }
            }
            d[i] = h;
        }
        // Accumulate the transformations.
        for (int i = 0; i < n - 1; i++)
        {
            v[n - 1][i] = v[i][i];
            v[i][i] = 1;
            double h = d[i + 1];
            if (h != 0)
            {
                for (int k = 0; k <= i; k++) d[k] = v[k][i + 1] / h;
                for (int j = 0; j <= i; j++)
                {
                    double g = 0;
                    for (int k = 0; k <= i; k++) g += v[k][i + 1] * v[k][j];
                    for (int k = 0; k <= i; k++) v[k][j] -= g * d[k];
                }
            }
            for (int k = 0; k <= i; k++) v[k][i + 1] = 0;
        }
        for (int j = 0; j < n; j++) { d[j] = v[n - 1][j]; v[n - 1][j] = 0; }
        v[n - 1][n - 1] = 1;
        e[0] = 0;
    }

    private static void Ql(double[][] v, double[] d, double[] e)
    {
        int n = d.Length;
        for (int i = 1; i < n; i++) e[i - 1] = e[i];
        e[n - 1] = 0;
        double f = 0, tst1 = 0, eps = Math.Pow(2, -52);
        for (int l = 0; l < n; l++)
        {
            tst1 = Math.Max(tst1, Math.Abs(d[l]) + Math.Abs(e[l]));
            int m = l;
            while (m < n && Math.Abs(e[m]) > eps * tst1) m++;
            if (m == n) m = n - 1;
            if (m > l)
            {
                int iterations = 0;
                do
                {
                    if (++iterations > 300) throw new InvalidOperationException("eigenvalue iteration did not converge");
                    double g = d[l], p = (d[l + 1] - g) / (2 * e[l]), r = Hypot(p, 1);
                    if (p < 0) r = -r;
                    d[l] = e[l] / (p + r);
                    d[l + 1] = e[l] * (p + r);
                    double dl1 = d[l + 1], h = g - d[l];
                    for (int i = l + 2; i < n; i++) d[i] -= h;
                    f += h;
                    p = d[m];
                    double c = 1, c2 = c, c3 = c, el1 = e[l + 1], s = 0, s2 = 0;
                    for (int i = m - 1; i >= l; i--)
                    {
                        c3 = c2; c2 = c; s2 = s;
                        g = c * e[i]; h = c * p; r = Hypot(p, e[i]);
                        e[i + 1] = s * r; s = e[i] / r; c = p / r;
                        p = c * d[i] - s * g;
                        d[i + 1] = h + s * (c * g + s * d[i]);
                        for (int k = 0; k < n; k++)
                        {
                            h = v[k][i + 1];
                            v[k][i + 1] = s * v[k][i] + c * h;
                            v[k][i] = c * v[k][i] - s * h;
                        }
                    }
                    p = -s * s2 * c3 * el1 * e[l] / dl1;
                    e[l] = s * p;
                    d[l] = c * p;
                } while (Math.Abs(e[l]) > eps * tst1);
            }
            d[l] += f;
            e[l] = 0;
        }
    }

    private static double Hypot(double a, double b) => Math.Sqrt(a * a + b * b);
}
