namespace Consort.Training.Skills;

/// <summary>
/// One-digit plus two-digit addition (<c>Q: 7+48= A:</c> → <c>55</c>): 900 distinct questions, shuffled by the seed;
/// test and dev are held out of training, so the score measures the learned rule, not memory.
/// </summary>
public static class ArithmeticSkill
{
    /// <summary>Skill name.</summary>
    public const string Name = "arith";

    /// <summary>Prompt for a question.</summary>
    public static string Prompt(int a, int b) => $"Q: {a}+{b}= A:";

    /// <summary>Generates train/dev/test (dev and test sizes from the 900 questions; the rest is train).</summary>
    public static SkillData Generate(int seed, int dev = 100, int test = 200)
    {
        var all = new List<(int A, int B)>();
        for (int a = 0; a <= 9; a++) for (int b = 10; b <= 99; b++) all.Add((a, b));
        var rng = new Random(seed);
        var order = all.OrderBy(_ => rng.Next()).ToList();
        SkillItem Item((int A, int B) q) => new($"arith-{q.A}+{q.B}", Prompt(q.A, q.B), (q.A + q.B).ToString(), Name);
        var t = order.Take(test).Select(Item).ToList();
        var d = order.Skip(test).Take(dev).Select(Item).ToList();
        var tr = order.Skip(test + dev).Select(Item).ToList();
        return new(Name, tr, d, t);
    }
}
