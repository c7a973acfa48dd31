using System.Numerics.Tensors;

namespace Consort.Methods.Api.Routing;

/// <summary>
/// A learned router: from a query embedding, a predicted utility per member (higher is better; units depend on
/// the kind: quality points for <c>knn</c>, <c>mlp</c> and <c>graph</c>, Bradley-Terry logits for <c>mf</c> and
/// <c>sw_ranking</c>). Backend-free: it sees only vectors. Trained by <see cref="RouterTrainer"/>, saved and loaded
/// by <see cref="RouterFile"/>.
/// </summary>
public abstract class Router
{
    /// <summary>Members and embedding width the router was trained for.</summary>
    protected Router(IReadOnlyList<string> models, int dimension)
    {
        Models = models; Dimension = dimension;
    }

    /// <summary>Router kind as configs name it.</summary>
    public abstract string Kind { get; }
    /// <summary>Member names, in output order.</summary>
    public IReadOnlyList<string> Models { get; }
    /// <summary>Expected embedding width.</summary>
    public int Dimension { get; }
    /// <summary>The "strong" member of threshold routing (see <see cref="RoutingDataset.Strongest"/>), set when trained.</summary>
    public int Strong { get; internal set; }

    /// <summary>Predicted utility of each member for the query.</summary>
    public double[] Predict(ReadOnlySpan<float> embedding)
    {
        if (embedding.Length != Dimension) throw new ArgumentException($"router expects {Dimension}-dimensional embeddings, got {embedding.Length}");
        return Score(embedding);
    }

    /// <summary>The kind's prediction (the width is already checked).</summary>
    protected abstract double[] Score(ReadOnlySpan<float> embedding);

    /// <summary>Writes what <see cref="RouterTrainer.Restore"/> needs to rebuild this router.</summary>
    internal abstract void Save(RouterState state);

    /// <summary>Index of the largest value (the first on ties).</summary>
    public static int ArgMax(IReadOnlyList<double> values)
    {
        int best = 0;
        for (int i = 1; i < values.Count; i++) if (values[i] > values[best]) best = i;
        return best;
    }

    /// <summary>
    /// How much the strong member leads the best other member: the value RouteLLM thresholds (for two members and a
    /// Bradley-Terry router, sigmoid of it is RouteLLM's strong-model win rate).
    /// </summary>
    public static double StrongAdvantage(IReadOnlyList<double> scores, int strong)
    {
        double other = double.NegativeInfinity;
        for (int m = 0; m < scores.Count; m++) if (m != strong) other = Math.Max(other, scores[m]);
        return scores[strong] - other;
    }

    /// <summary>
    /// The member a threshold picks: the strong one when its advantage reaches <paramref name="threshold"/>,
    /// else the best of the others. Threshold 0 is the plain arg-max (ties go to the strong member).
    /// </summary>
    public static int Route(IReadOnlyList<double> scores, int strong, double threshold)
    {
        if (StrongAdvantage(scores, strong) >= threshold) return strong;
        int best = -1;
        for (int m = 0; m < scores.Count; m++) if (m != strong && (best < 0 || scores[m] > scores[best])) best = m;
        return best;
    }

    /// <summary>Cosine similarity.</summary>
    internal static float Cosine(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        float na = TensorPrimitives.Norm(a), nb = TensorPrimitives.Norm(b);
        return na == 0 || nb == 0 ? 0 : TensorPrimitives.Dot(a, b) / (na * nb);
    }

    /// <summary>A unit-length copy (zero stays zero).</summary>
    internal static float[] Normalized(ReadOnlySpan<float> v)
    {
        var r = v.ToArray();
        float n = TensorPrimitives.Norm(r);
        if (n > 0) TensorPrimitives.Divide(r, n, r);
        return r;
    }
}
