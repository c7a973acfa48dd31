using System.Numerics.Tensors;

namespace Consort.Methods.Logit;

/// <summary>
/// Signed arithmetic over members' next-token log-probabilities: Σ c_i log p_i(v), optionally restricted to the tokens
/// a chosen member finds plausible. Log-probabilities and raw logits differ by one constant per member, which a signed
/// sum turns into one constant overall, so the softmax of the result is the same as for logits: this is the arithmetic of
/// contrastive decoding (expert − β·amateur), proxy tuning / DExperts (base + α·(expert − anti-expert)) and MoCo's
/// logit contrastive (top-1 + λ·Σ(top_i − bottom_i)).
/// </summary>
public static class LogitArithmetic
{
    /// <summary>Σ coefficient_i · logProbs_i over the vocabulary (not normalized).</summary>
    public static float[] Combine(IReadOnlyList<float[]> memberLogProbs, IReadOnlyList<double> coefficients)
    {
        if (memberLogProbs.Count == 0 || memberLogProbs.Count != coefficients.Count)
            throw new ArgumentException($"{memberLogProbs.Count} distributions for {coefficients.Count} coefficients");
        int n = memberLogProbs[0].Length;
        var result = new float[n];
        for (int i = 0; i < memberLogProbs.Count; i++)
        {
            var lp = memberLogProbs[i];
            if (lp.Length != n) throw new ArgumentException($"member {i} has {lp.Length} tokens, member 0 has {n}");
            float c = (float)coefficients[i];
            if (c == 0) continue;
            // A token a member rules out (-inf) stays ruled out whatever the sign: -inf * negative would be +inf.
            for (int v = 0; v < n; v++)
                if (float.IsNegativeInfinity(lp[v])) result[v] = float.NegativeInfinity;
            var term = new float[n];
            TensorPrimitives.Multiply(lp, c, term);
            for (int v = 0; v < n; v++)
                if (!float.IsNegativeInfinity(result[v])) result[v] += float.IsFinite(term[v]) ? term[v] : float.NegativeInfinity;
        }
        return result;
    }

    /// <summary>
    /// The plausibility mask of contrastive decoding (Li et al., 2023): tokens whose probability under
    /// <paramref name="expertLogProbs"/> is below <paramref name="alpha"/> times the expert's largest get -infinity in
    /// <paramref name="scores"/> (in place). Alpha 0 keeps every token the expert allows.
    /// </summary>
    public static void ApplyPlausibility(float[] scores, float[] expertLogProbs, double alpha)
    {
        if (alpha is < 0 or > 1 || double.IsNaN(alpha)) throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "alpha must be in [0, 1]");
        float max = TensorPrimitives.Max(expertLogProbs);
        float cut = alpha > 0 ? max + (float)Math.Log(alpha) : float.NegativeInfinity;
        for (int v = 0; v < scores.Length; v++)
            if (expertLogProbs[v] < cut || float.IsNegativeInfinity(expertLogProbs[v])) scores[v] = float.NegativeInfinity;
    }
}
