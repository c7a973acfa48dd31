namespace Consort.Evaluation;

/// <summary>
/// A seeded, stratified order of items in which every prefix is a fair sample: items are shuffled within each
/// stratum (e.g. the item's <c>domain</c>), then the strata are interleaved so that after any k items each stratum
/// holds its share of k (largest deficit first). Taking the first N (<c>--limit</c>, a method's calibration subset)
/// is then a stratified random sample, and a larger N contains a smaller one, so a rerun with another limit reuses
/// what matches.
/// </summary>
public static class SampleOrder
{
    /// <summary>Orders <paramref name="items"/> for sampling.</summary>
    /// <param name="items">The items, in file order.</param>
    /// <param name="stratum">The item's stratum, or null (all null: one stratum, a plain shuffle).</param>
    /// <param name="seed">Seed of the shuffle.</param>
    public static IReadOnlyList<T> Stratified<T>(IReadOnlyList<T> items, Func<T, string?> stratum, int seed)
    {
        if (items.Count <= 1) return items.ToList();
        var rng = new Random(seed);
        // Strata in name order (not first appearance), so reordering a file does not move them.
        var groups = items.GroupBy(i => stratum(i) ?? "", StringComparer.Ordinal)
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => Shuffle(g.ToList(), rng))
            .ToList();
        var taken = new int[groups.Count];
        var order = new List<T>(items.Count);
        for (int k = 1; k <= items.Count; k++)
        {
            int best = -1;
            double bestDeficit = double.NegativeInfinity;
            for (int g = 0; g < groups.Count; g++)
            {
                if (taken[g] == groups[g].Count) continue;
                double deficit = (double)k * groups[g].Count / items.Count - taken[g];
                if (deficit > bestDeficit + 1e-12) { best = g; bestDeficit = deficit; }
            }
            order.Add(groups[best][taken[best]++]);
        }
        return order;
    }

    private static List<T> Shuffle<T>(List<T> list, Random rng)
    {
        for (int i = list.Count - 1; i > 0; i--)
        {
            int j = rng.Next(i + 1);
            (list[i], list[j]) = (list[j], list[i]);
        }
        return list;
    }
}
