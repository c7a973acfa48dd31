namespace Consort.Training.Skills;

/// <summary>Simple generated English sentences: generic text for the base model, deterministic for a random source.</summary>
public static class GenericText
{
    private static readonly string[] Adjectives = ["small", "red", "old", "quiet", "bright", "happy", "tall", "cold", "green", "busy"];
    private static readonly string[] Nouns = ["cat", "dog", "bird", "river", "house", "tree", "child", "farmer", "boat", "garden", "teacher", "road"];
    private static readonly string[] Verbs = ["sees", "likes", "finds", "follows", "helps", "watches", "paints", "visits"];
    private static readonly string[] Places = ["near the hill", "in the town", "by the sea", "under the bridge", "at the market", "in the forest"];
    private static readonly string[] Times = ["Every morning", "At night", "On Sunday", "In the summer", "After lunch", "Today"];

    /// <summary>One to three sentences.</summary>
    public static string Next(Random rng)
    {
        string P(string[] a) => a[rng.Next(a.Length)];
        var parts = new List<string>();
        int n = 1 + rng.Next(3);
        for (int i = 0; i < n; i++)
        {
            parts.Add(rng.Next(3) switch
            {
                0 => $"The {P(Adjectives)} {P(Nouns)} {P(Verbs)} the {P(Nouns)}.",
                1 => $"{P(Times)} the {P(Nouns)} {P(Verbs)} a {P(Adjectives)} {P(Nouns)} {P(Places)}.",
                _ => $"A {P(Nouns)} lives {P(Places)}, and it is {P(Adjectives)}.",
            });
        }
        return string.Join(" ", parts);
    }
}
