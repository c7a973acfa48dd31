namespace Consort.Methods.Logit.Alignment;

/// <summary>
/// Combines next-token distributions when some members give only their top-k log-probabilities (endpoints): the
/// candidates are the union U of every member's top-k (full-distribution members contribute their top-K, K the largest k
/// of the others); a top-k member's unlisted candidates get its left-over mass spread over the tokens it did not list
/// (capped at its least likely listed token); each member is renormalized over U and the members are combined there.
/// Tokens outside U get no probability. The result is approximate (it equals the exact combination, up to
/// renormalization, when every member's top-k covers its mass), so callers mark it so in traces.
/// </summary>
public static class TopKUnion
{
    /// <summary>Fused log-probabilities over the vocabulary (-infinity outside the candidate union) and whether they are approximate.</summary>
    /// <param name="members">One distribution per member, all over the same token ids.</param>
    /// <param name="weights">Member weights (normalized for a mixture).</param>
    /// <param name="combine">Mixture or product of experts.</param>
    public static (float[] LogProbs, bool Approximate) Combine(IReadOnlyList<TokenDistribution> members, IReadOnlyList<double> weights, FusionCombine combine)
    {
        if (members.Count == 0) throw new ArgumentException("no members", nameof(members));
        int v = members[0].VocabularySize;
        if (members.All(m => m.Kind == DistributionKind.FullLogits))
        {
            var exact = FusedTokenModel.CombineLogProbs(members.Select(m => m.LogProbabilities()).ToList(), weights, combine);
            var norm = new float[exact.Length];
            TokenMath.LogSoftmax(exact, norm);
            return (norm, false);
        }
        var ids = Candidates(members);
        var per = new float[members.Count][];
        for (int i = 0; i < members.Count; i++) per[i] = Restrict(members[i], ids);
        var combined = FusedTokenModel.CombineLogProbs(per, weights, combine);
        var local = new float[ids.Length];
        TokenMath.LogSoftmax(combined, local);
        return (Scatter(local, ids, v), true);
    }

    /// <summary>The candidate tokens: the union of the top-k members' lists and the full members' top K (K the largest k),
    /// in id order.</summary>
    public static int[] Candidates(IReadOnlyList<TokenDistribution> members)
    {
        int k = members.Where(m => m.Kind == DistributionKind.TopKLogprobs).Select(m => m.TopIds!.Length).DefaultIfEmpty(0).Max();
        var union = new HashSet<int>();
        foreach (var m in members)
        {
            if (m.Kind == DistributionKind.TopKLogprobs) union.UnionWith(m.TopIds!);
            else union.UnionWith(TopIds(m.LogProbabilities(), k));
        }
        if (union.Count == 0) throw new ConsortException("top-k fusion: no member listed any token");
        return union.Order().ToArray();
    }

    /// <summary>Values over <paramref name="ids"/> placed into a vocabulary-sized array, -infinity elsewhere.</summary>
    public static float[] Scatter(float[] local, int[] ids, int vocabularySize)
    {
        var result = new float[vocabularySize];
        Array.Fill(result, float.NegativeInfinity);
        for (int j = 0; j < ids.Length; j++) result[ids[j]] = local[j];
        return result;
    }

    /// <summary>A member's log-probabilities over <paramref name="ids"/>, renormalized there.</summary>
    internal static float[] Restrict(TokenDistribution m, int[] ids)
    {
        var lp = new float[ids.Length];
        if (m.Kind == DistributionKind.FullLogits)
        {
            var all = m.LogProbabilities();
            for (int j = 0; j < ids.Length; j++) lp[j] = all[ids[j]];
        }
        else
        {
            var listed = new Dictionary<int, float>();
            double mass = 0;
            float least = 0;
            for (int j = 0; j < m.TopIds!.Length; j++)
            {
                listed[m.TopIds[j]] = m.TopLogprobs![j];
                mass += Math.Exp(m.TopLogprobs[j]);
                least = j == 0 ? m.TopLogprobs[j] : Math.Min(least, m.TopLogprobs[j]);
            }
            int unlisted = m.VocabularySize - listed.Count;
            double rest = Math.Max(0, 1 - mass);
            float fill = unlisted > 0 && rest > 0 ? Math.Min(least, (float)Math.Log(rest / unlisted)) : float.NegativeInfinity;
            for (int j = 0; j < ids.Length; j++) lp[j] = listed.TryGetValue(ids[j], out var l) ? l : fill;
        }
        var norm = new float[lp.Length];
        if (lp.All(float.IsNegativeInfinity)) { Array.Fill(norm, float.NegativeInfinity); return norm; }
        TokenMath.LogSoftmax(lp, norm);
        return norm;
    }

    private static IEnumerable<int> TopIds(float[] logProbs, int k)
    {
        if (k >= logProbs.Length) return Enumerable.Range(0, logProbs.Length);
        // Partial selection: the k largest by value, ties by id.
        var idx = Enumerable.Range(0, logProbs.Length).ToArray();
        var keys = logProbs.Select(x => -x).ToArray();
        Array.Sort(keys, idx);
        return idx.Take(k);
    }
}
