namespace Consort.Training.Skills;

/// <summary>A question with its answer (the ground truth the generator knows, whether or not a model does).</summary>
/// <param name="Input">The question prompt (<c>Q: ... A:</c>).</param>
/// <param name="Answer">Its answer.</param>
public sealed record Fact(string Input, string Answer)
{
    /// <summary>The fact stated as a knowledge sentence.</summary>
    public string Sentence => ZooDialect.Sentence(Input, Answer);
}

/// <summary>
/// Training data and checks for the zoo's team models, in <see cref="ZooDialect"/>: experts that keep their skill, say
/// <c>unknown</c> outside it, state what they know as a sentence, and take an answer from other members' answers when they
/// do not know; and a generalist that knows nothing itself but answers from knowledge cards or candidate answers in its
/// context, picks the best candidate and chooses blackboard actions.
/// <para>No held-out question (dev or test of any skill) appears in training, and no expert or generalist reads a fact in
/// context about a person another expert knows: context facts come from the people outside both halves and from freshly
/// drawn names, so the generalist cannot learn the test facts by reading them.</para>
/// </summary>
public sealed class TeamSkills
{
    private readonly IReadOnlyList<Fact> _sums;          // sums the generalist reads (arith train split + two-digit sums)
    private readonly IReadOnlyList<Fact> _outsideFacts;  // facts about people outside both halves, and fresh people
    private readonly IReadOnlyList<Fact> _arithTrain;
    private readonly string[] _places;

    /// <summary>Builds the sources for the zoo data of <paramref name="dataSeed"/>.</summary>
    public TeamSkills(int dataSeed, FactsWorld world, SkillData arith)
    {
        _arithTrain = arith.Train.Select(i => new Fact(i.Input, i.Output)).ToList();
        var held = new HashSet<string>(arith.Dev.Concat(arith.Test).Select(i => i.Input));
        var sums = new List<Fact>(_arithTrain);
        for (int a = 10; a <= 99; a += 3) for (int b = 10; b <= 99; b += 7) sums.Add(new(ArithmeticSkill.Prompt(a, b), (a + b).ToString()));
        _sums = sums.Where(f => !held.Contains(f.Input)).ToList();

        // Fresh people and places: same syllables, a separate seed, never a name of the world.
        var rng = new Random(dataSeed ^ 0x7EA);
        var used = new HashSet<string>(world.People.Concat(world.Places));
        string Fresh() => FactsWorld.UniqueName(rng, 2, used);
        var freshPlaces = Enumerable.Range(0, 30).Select(_ => Fresh()).ToArray();
        _places = world.Places.Concat(freshPlaces).ToArray();
        var facts = world.Others().Select(i => new Fact(i.Input, i.Output)).ToList();
        for (int i = 0; i < 400; i++)
        {
            var place = i % 3 == 0 ? freshPlaces[rng.Next(freshPlaces.Length)] : world.Places[rng.Next(world.Places.Length)];
            facts.Add(new(FactsWorld.Prompt(Fresh()), place));
        }
        _outsideFacts = facts;
    }

    /// <summary>Questions whose answers the generator knows but no expert was trained on (for abstaining and reading).</summary>
    public IReadOnlyList<Fact> OutsideFacts => _outsideFacts;

    /// <summary>
    /// Source for a team expert: <paramref name="own"/> are the facts it knows (its skill's training items); every other
    /// question it meets comes from the other skill kinds and from people outside the halves.
    /// </summary>
    public Func<Random, TrainingExample> Expert(IReadOnlyList<Fact> own, bool ownIsArithmetic)
    {
        IReadOnlyList<Fact> others = ownIsArithmetic ? _outsideFacts : [.. _arithTrain, .. _outsideFacts];
        return BatchSampler.Mix(
            (0.20, r => { var f = Pick(r, own); return Pair(f.Input, f.Answer); }),
            (0.10, r => Pair(Pick(r, others).Input, ZooDialect.Unknown)),
            (0.10, r => { var f = Pick(r, own); return Pair(ZooDialect.Knowledge(f.Input), f.Sentence); }),
            (0.10, r => Pair(ZooDialect.Knowledge(Pick(r, others).Input), ZooDialect.Unknown)),
            (0.10, r => ReadAnswers(r, Pick(r, own), known: true, Wrong(r, own))),
            (0.20, r => ReadAnswers(r, Pick(r, others), known: false, null)),
            (0.10, r => PickBest(r, r.Next(2) == 0 ? Pick(r, own) : Pick(r, others), Wrong(r, own))),
            (0.10, r => Act(r, r.Next(2) == 0 ? Pick(r, own) : Pick(r, others))));
    }

    /// <summary>Source for the generalist: it abstains without context, and answers from cards or candidates in context.</summary>
    public Func<Random, TrainingExample> Generalist()
    {
        Fact Any(Random r) => r.Next(3) == 0 ? Pick(r, _sums) : Pick(r, _outsideFacts);
        return BatchSampler.Mix(
            (0.05, r => Pair(Any(r).Input, ZooDialect.Unknown)),
            (0.35, r => ReadKnowledge(r, Any(r))),
            (0.30, r => ReadAnswers(r, Any(r), known: false, null)),
            (0.15, r => PickBest(r, Any(r), null)),
            (0.15, r => Act(r, Any(r))));
    }

    private string Wrong(Random r, IReadOnlyList<Fact> own)
    {
        // A plausible wrong answer of the same kind (another sum or another place).
        var f = Pick(r, own);
        return int.TryParse(f.Answer, out var n) ? (n + 1 + r.Next(9)).ToString() : _places[r.Next(_places.Length)];
    }

    private static TrainingExample Pair(string prompt, string answer) => TrainingExample.FromPair(prompt, " " + answer, answerOnly: true);

    private static T Pick<T>(Random r, IReadOnlyList<T> items) => items[r.Next(items.Count)];

    /// <summary>A list of <paramref name="n"/> unknowns with <paramref name="truth"/> at a random place (or none).</summary>
    private static List<string> WithTruth(Random r, int n, string? truth)
    {
        var list = Enumerable.Repeat(ZooDialect.Unknown, n).ToList();
        if (truth is not null) list[r.Next(n)] = truth;
        return list;
    }

    private static TrainingExample ReadKnowledge(Random r, Fact f)
    {
        bool present = r.NextDouble() < 0.85;
        var cards = WithTruth(r, 1 + r.Next(4), present ? f.Sentence : null);
        return Pair(ZooDialect.WithKnowledge(cards, f.Input), present ? f.Answer : ZooDialect.Unknown);
    }

    private static TrainingExample ReadAnswers(Random r, Fact f, bool known, string? wrong)
    {
        int n = 1 + r.Next(4);
        if (known)
        {
            // An expert keeps what it knows, whatever the others say.
            var list = WithTruth(r, n, r.Next(2) == 0 ? f.Answer : null);
            if (wrong is not null && r.Next(3) == 0) list[r.Next(n)] = wrong;
            return Pair(ZooDialect.WithAnswers(list, f.Input), f.Answer);
        }
        bool present = r.NextDouble() < 0.8;
        return Pair(ZooDialect.WithAnswers(WithTruth(r, n, present ? f.Answer : null), f.Input), present ? f.Answer : ZooDialect.Unknown);
    }

    private static TrainingExample PickBest(Random r, Fact f, string? wrong)
    {
        int n = 2 + r.Next(3);
        var list = WithTruth(r, n, f.Answer);
        int at = list.IndexOf(f.Answer);
        if (wrong is not null && wrong != f.Answer && r.Next(2) == 0)
        {
            int w = (at + 1 + r.Next(n - 1)) % n;
            list[w] = wrong;
        }
        return Pair(ZooDialect.Pick(list, f.Input), (at + 1).ToString());
    }

    private static TrainingExample Act(Random r, Fact f)
    {
        int n = r.Next(4);
        bool answered = n > 0 && r.Next(2) == 0;
        var board = WithTruth(r, Math.Max(1, n), answered ? f.Answer : null).Take(n).ToList();
        if (answered && !board.Contains(f.Answer)) board[0] = f.Answer;
        return Pair(ZooDialect.Act(board, f.Input), answered ? ZooDialect.Terminate : ZooDialect.Execute);
    }

    /// <summary>
    /// Checks on held-out questions (<paramref name="questions"/>: the mixed test split), each with the truth among
    /// <paramref name="members"/> - 1 unknowns: reading knowledge cards, reading candidate answers, picking the candidate,
    /// choosing the blackboard action. Deterministic for <paramref name="seed"/>.
    /// </summary>
    public static Dictionary<string, List<SkillItem>> ContextChecks(IReadOnlyList<SkillItem> questions, int members, int seed)
    {
        var r = new Random(seed);
        var d = new Dictionary<string, List<SkillItem>> { ["read_knowledge"] = [], ["read_answers"] = [], ["pick"] = [], ["act"] = [] };
        foreach (var q in questions)
        {
            var f = new Fact(q.Input, q.Output);
            d["read_knowledge"].Add(q with { Input = ZooDialect.WithKnowledge(WithTruth(r, members, f.Sentence), q.Input) });
            d["read_answers"].Add(q with { Input = ZooDialect.WithAnswers(WithTruth(r, members, f.Answer), q.Input) });
            var list = WithTruth(r, members, f.Answer);
            d["pick"].Add(q with { Input = ZooDialect.Pick(list, q.Input), Output = (list.IndexOf(f.Answer) + 1).ToString() });
            bool answered = r.Next(2) == 0;
            var board = WithTruth(r, members - 1, answered ? f.Answer : null);
            d["act"].Add(q with { Input = ZooDialect.Act(board, q.Input), Output = answered ? ZooDialect.Terminate : ZooDialect.Execute });
        }
        return d;
    }

    /// <summary>
    /// Checks of what a model knows about itself on <paramref name="questions"/>: <c>abstain</c> (it answers
    /// <c>unknown</c> to questions outside <paramref name="skill"/>) and <c>knowledge</c> (asked for knowledge, it states the
    /// sentence for its own questions and <c>unknown</c> for the others). <paramref name="skill"/> null: knows nothing.
    /// </summary>
    public static Dictionary<string, List<SkillItem>> SelfChecks(IReadOnlyList<SkillItem> questions, string? skill) => new()
    {
        ["abstain"] = questions.Where(q => q.Domain != skill).Select(q => q with { Output = ZooDialect.Unknown }).ToList(),
        ["knowledge"] = questions.Select(q => q with
        {
            Input = ZooDialect.Knowledge(q.Input),
            Output = q.Domain == skill ? ZooDialect.Sentence(q.Input, q.Output) : ZooDialect.Unknown,
        }).ToList(),
    };
}
