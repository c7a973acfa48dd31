namespace Consort.Training.Skills;

/// <summary>
/// A made-up world: people with invented names, each living in one of 30 invented places, all drawn from a seed.
/// People 0-99 form half A, 100-199 half B (each known by a different expert); 200-399 are "other people" the base model
/// sees only to learn the question format.
/// </summary>
public sealed class FactsWorld
{
    private static readonly string[] Onsets = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "tr", "st", "th"];
    private static readonly string[] Vowels = ["a", "e", "i", "o", "u", "ai", "ei", "ou"];
    private static readonly string[] Codas = ["", "", "n", "r", "l", "s", "x", "th", "m"];

    /// <summary>Skill name for half A.</summary>
    public const string HalfA = "facts_a";
    /// <summary>Skill name for half B.</summary>
    public const string HalfB = "facts_b";

    /// <summary>Builds the world for <paramref name="seed"/>.</summary>
    public FactsWorld(int seed, int people = 400, int places = 30)
    {
        var rng = new Random(seed);
        var used = new HashSet<string>();
        string NewName(int syllables) => UniqueName(rng, syllables, used);
        Places = Enumerable.Range(0, places).Select(_ => NewName(2)).ToArray();
        People = Enumerable.Range(0, people).Select(_ => NewName(2)).ToArray();
        Home = People.Select(_ => Places[rng.Next(places)]).ToArray();
        _seed = seed;
    }

    private readonly int _seed;

    /// <summary>A made-up name of <paramref name="syllables"/> syllables (at least 4 letters) not yet in <paramref name="used"/>, which it joins.</summary>
    public static string UniqueName(Random rng, int syllables, ISet<string> used)
    {
        while (true)
        {
            var s = string.Concat(Enumerable.Range(0, syllables).Select(_ => Onsets[rng.Next(Onsets.Length)] + Vowels[rng.Next(Vowels.Length)]))
                    + Codas[rng.Next(Codas.Length)];
            s = char.ToUpperInvariant(s[0]) + s[1..];
            if (s.Length >= 4 && used.Add(s)) return s;
        }
    }

    /// <summary>Place names.</summary>
    public string[] Places { get; }
    /// <summary>Person names.</summary>
    public string[] People { get; }
    /// <summary>Where each person lives.</summary>
    public string[] Home { get; }

    /// <summary>Prompt for a person.</summary>
    public static string Prompt(string person) => $"Q: Where does {person} live? A:";

    /// <summary>The fact about person <paramref name="i"/> as an item.</summary>
    public SkillItem Item(int i, string skill) => new($"{skill}-{People[i]}", Prompt(People[i]), Home[i], skill);

    /// <summary>
    /// Half A (people 0-99) or B (100-199): the expert trains on all of its facts (knowledge, not a rule); dev and test
    /// are disjoint subsets of them (40 / 60).
    /// </summary>
    public SkillData Half(string skill, int dev = 40)
    {
        int start = skill switch { HalfA => 0, HalfB => 100, _ => throw new ArgumentException("unknown facts half " + skill) };
        var items = Enumerable.Range(start, 100).Select(i => Item(i, skill)).ToList();
        var rng = new Random(_seed ^ start);
        var order = items.OrderBy(_ => rng.Next()).ToList();
        return new(skill, items, order.Take(dev).ToList(), order.Skip(dev).ToList());
    }

    /// <summary>Facts about the "other people" (200 onward), for teaching the base model the format.</summary>
    public IReadOnlyList<SkillItem> Others() => Enumerable.Range(200, People.Length - 200).Select(i => Item(i, "facts_other")).ToList();
}
