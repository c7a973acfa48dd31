namespace Consort.Methods;

/// <summary>
/// A binary logistic-regression classifier over standardized features, fitted by full-batch gradient descent with a
/// small L2 penalty (deterministic: no sampling). Used where a method learns a yes/no decision on dev (co_llm's
/// deferral, mentor_collab's branch choice).
/// </summary>
public sealed class LogisticRegression
{
    private readonly double[] _mean, _scale, _weights;
    private readonly double _bias;

    private LogisticRegression(double[] mean, double[] scale, double[] weights, double bias)
    {
        _mean = mean; _scale = scale; _weights = weights; _bias = bias;
    }

    /// <summary>Feature count.</summary>
    public int Features => _weights.Length;
    /// <summary>Share of positive labels it was fitted on.</summary>
    public double PositiveRate { get; private init; }
    /// <summary>Accuracy on the data it was fitted on.</summary>
    public double TrainingAccuracy { get; private init; }

    /// <summary>Fits the classifier. With one class only it predicts that class's rate everywhere.</summary>
    /// <param name="x">Feature rows (equal lengths).</param>
    /// <param name="y">Labels (true = positive).</param>
    /// <param name="iterations">Gradient steps.</param>
    /// <param name="learningRate">Step size.</param>
    /// <param name="l2">L2 penalty on the weights.</param>
    public static LogisticRegression Fit(IReadOnlyList<double[]> x, IReadOnlyList<bool> y, int iterations = 500, double learningRate = 0.5, double l2 = 1e-3)
    {
        if (x.Count == 0 || x.Count != y.Count) throw new ArgumentException("one label per row, at least one row");
        int n = x.Count, d = x[0].Length;
        var mean = new double[d]; var scale = new double[d];
        for (int j = 0; j < d; j++)
        {
            mean[j] = x.Average(r => r[j]);
            double var = x.Average(r => (r[j] - mean[j]) * (r[j] - mean[j]));
            scale[j] = var > 1e-12 ? Math.Sqrt(var) : 1;
        }
        var z = x.Select(r => Enumerable.Range(0, d).Select(j => (r[j] - mean[j]) / scale[j]).ToArray()).ToArray();
        double rate = y.Count(v => v) / (double)n;
        var w = new double[d];
        double b = Math.Log(Math.Clamp(rate, 1e-6, 1 - 1e-6) / (1 - Math.Clamp(rate, 1e-6, 1 - 1e-6)));
        if (rate > 0 && rate < 1)
        {
            var g = new double[d];
            for (int it = 0; it < iterations; it++)
            {
                Array.Clear(g);
                double gb = 0;
                for (int i = 0; i < n; i++)
                {
                    double err = Sigmoid(b + Dot(w, z[i])) - (y[i] ? 1 : 0);
                    for (int j = 0; j < d; j++) g[j] += err * z[i][j];
                    gb += err;
                }
                for (int j = 0; j < d; j++) w[j] -= learningRate * (g[j] / n + l2 * w[j]);
                b -= learningRate * gb / n;
            }
        }
        var model = new LogisticRegression(mean, scale, w, b) { PositiveRate = rate };
        double acc = Enumerable.Range(0, n).Count(i => model.Probability(x[i]) > 0.5 == y[i]) / (double)n;
        return new LogisticRegression(mean, scale, w, b) { PositiveRate = rate, TrainingAccuracy = acc };
    }

    /// <summary>The probability of the positive class.</summary>
    public double Probability(ReadOnlySpan<double> features)
    {
        if (features.Length != _weights.Length) throw new ArgumentException($"expected {_weights.Length} features, got {features.Length}");
        double s = _bias;
        for (int j = 0; j < _weights.Length; j++) s += _weights[j] * (features[j] - _mean[j]) / _scale[j];
        return Sigmoid(s);
    }

    private static double Dot(double[] a, double[] b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += a[i] * b[i];
        return s;
    }

    private static double Sigmoid(double v) => v >= 0 ? 1 / (1 + Math.Exp(-v)) : Math.Exp(v) / (1 + Math.Exp(v));
}
