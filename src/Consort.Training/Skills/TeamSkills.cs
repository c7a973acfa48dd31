namespace Consort.Training.Skills;

/// <summary>A question with its answer (the ground truth the generator knows, whether or not a model does).</summary>
/// <param name="Input">The question prompt (<c>Q: ... A:</c>).</param>
/// <param name="Answer">Its answer.</param>
public sealed record Fact(string Input, string Answer)
{
    /// <summary>The fact stated as a knowledge sentence.</summary>
    public string Sentence => ZooDialect.Sentence(Answer);
}

/// <summary>
/// Training data and checks for the zoo's team models, in <see cref="ZooDialect"/>: experts that keep their skill, answer
/// <c>-</c> outside it (to every question they were not trained on, including the other facts half's people, whose names
/// but not homes they are shown), state what they know as a sentence, ignore other answers on their own questions and
/// choose blackboard actions; and a generalist that knows nothing itself but answers from knowledge cards or candidate
/// answers in its context and chooses blackboard actions.
/// <para>No held-out question (dev or test of any skill) appears with its answer in training but as an expert's own
/// knowledge, and the generalist reads only questions about people outside both halves, freshly drawn names and the
/// arithmetic training split, each with an answer drawn at random (it learns to answer with what it reads, never from
/// memory), so it cannot learn the test answers by reading them.</para>
/// </summary>
public sealed class TeamSkills
{
    private readonly IReadOnlyList<Fact> _sums;          // the arithmetic training split
    private readonly IReadOnlyList<Fact> _outsideFacts;  // facts about people outside both halves, and fresh people
    private readonly FactsWorld _world;

    /// <summary>Builds the sources for the zoo data of <paramref name="dataSeed"/>.</summary>
    public TeamSkills(int dataSeed, FactsWorld world, SkillData arith)
    {
        _world = world;
        _sums = arith.Train.Select(i => new Fact(i.Input, i.Output)).ToList();
        // Fresh people: same syllables, a separate seed, never a name of the world.
        var rng = new Random(dataSeed ^ 0x7EA);
        var used = new HashSet<string>(world.People.Concat(world.Places));
        var facts = world.Others().Select(i => new Fact(i.Input, i.Output)).ToList();
        for (int i = 0; i < 400; i++) facts.Add(new(FactsWorld.Prompt(FactsWorld.UniqueName(rng, 2, used)), world.Places[rng.Next(world.Places.Length)]));
        _outsideFacts = facts;
        // Drawn after the facts, so the experts' data stays what it was.
        _freshPlaces = Enumerable.Range(0, 30).Select(_ => FactsWorld.UniqueName(rng, 2, used)).ToArray();
    }

    private readonly string[] _freshPlaces;   // places of no person of the world, for the reader's contexts

    /// <summary>
    /// Source for a team expert that knows <paramref name="skill"/> (<paramref name="own"/>: its training items). The
    /// questions it does not know: the other kind of skill, people outside the halves, and (half the time) the people of
    /// the other half or of both halves (for the arithmetic expert).
    /// </summary>
    public Func<Random, TrainingExample> Expert(string skill, IReadOnlyList<Fact> own)
    {
        bool arith = skill == ArithmeticSkill.Name;
        IReadOnlyList<Fact> others = arith ? _outsideFacts : [.. _outsideFacts, .. _sums];
        IReadOnlyList<Fact> near = (skill switch
        {
            FactsWorld.HalfA => _world.Half(FactsWorld.HalfB).Train,
            FactsWorld.HalfB => _world.Half(FactsWorld.HalfA).Train,
            _ => _world.Half(FactsWorld.HalfA).Train.Concat(_world.Half(FactsWorld.HalfB).Train),
        }).Select(i => new Fact(i.Input, i.Output)).ToList();
        Fact Own(Random r) => Pick(r, own);
        Fact Other(Random r) => r.Next(2) == 0 ? Pick(r, near) : Pick(r, others);
        // Other answers in context: dashes, its own kind of answers, or others' (it keeps what it knows, says "-" otherwise).
        List<string> Context(Random r) => Enumerable.Range(0, r.Next(4)).Select(_ => r.Next(2) == 0 ? ZooDialect.Unknown : (r.Next(2) == 0 ? Own(r) : Other(r)).Answer).ToList();
        return BatchSampler.Mix(
            (0.30, r => { var f = Own(r); return Pair(f.Input, f.Answer); }),
            (0.20, r => Pair(Other(r).Input, ZooDialect.Unknown)),
            (0.15, r => { var f = Own(r); return Pair(ZooDialect.Knowledge(f.Input), f.Sentence); }),
            (0.10, r => Pair(ZooDialect.Knowledge(Other(r).Input), ZooDialect.Unknown)),
            (0.15, r => { bool mine = r.Next(2) == 0; var f = mine ? Own(r) : Other(r); return Pair(ZooDialect.WithAnswers(Context(r), f.Input), mine ? f.Answer : ZooDialect.Unknown); }),
            (0.10, r => Act(r, r.Next(2) == 0 ? Own(r) : Other(r))));
    }

    /// <summary>Source for the generalist: it says <c>-</c> without context, and answers from the cards or candidates in its context.</summary>
    public Func<Random, TrainingExample> Generalist()
    {
        // What the reader reads is what it answers, whatever the question's true answer: drawn afresh for each example, so the
        // answer can come only from the context (the base remembers the training sums and the outside people's homes; a
        // reader trained on true answers learned to recall those and copied no number at all, measured).
        Fact Any(Random r) => r.Next(2) == 0
            ? Pick(r, _sums) with { Answer = r.Next(10, 109).ToString(System.Globalization.CultureInfo.InvariantCulture) }
            : Pick(r, _outsideFacts) with { Answer = r.Next(3) == 0 ? Pick(r, _freshPlaces) : _world.Places[r.Next(_world.Places.Length)] };
        return BatchSampler.Mix(
            (0.05, r => Pair(Any(r).Input, ZooDialect.Unknown)),
            (0.40, r => Read(r, Any(r), knowledge: true)),
            (0.40, r => Read(r, Any(r), knowledge: false)),
            (0.15, r => Act(r, Any(r))));
    }

    private static TrainingExample Pair(string prompt, string answer) => TrainingExample.FromPair(prompt, " " + answer, answerOnly: true);

    private static T Pick<T>(Random r, IReadOnlyList<T> items) => items[r.Next(items.Count)];

    /// <summary>A list of <paramref name="n"/> dashes with <paramref name="truth"/> at a random place (or none).</summary>
    private static List<string> WithTruth(Random r, int n, string? truth)
    {
        var list = Enumerable.Repeat(ZooDialect.Unknown, n).ToList();
        if (truth is not null) list[r.Next(n)] = truth;
        return list;
    }

    // Methods show only the answers that say something, so most lists hold one item; lists with dashes (every answer
    // shown) and lists of dashes only (nobody knew) come up too.
    private static TrainingExample Read(Random r, Fact f, bool knowledge)
    {
        double u = r.NextDouble();
        string item = knowledge ? f.Sentence : f.Answer;
        var list = u < 0.65 ? [item] : u < 0.85 ? WithTruth(r, 2 + r.Next(3), item) : WithTruth(r, 1 + r.Next(4), null);
        var prompt = knowledge ? ZooDialect.WithKnowledge(list, f.Input) : ZooDialect.WithAnswers(list, f.Input);
        return Pair(prompt, u < 0.85 ? f.Answer : ZooDialect.Unknown);
    }

    private static TrainingExample Act(Random r, Fact f)
    {
        int n = r.Next(4);
        bool answered = n > 0 && r.Next(2) == 0;
        var board = WithTruth(r, Math.Max(1, n), answered ? f.Answer : null).Take(n).ToList();
        return Pair(ZooDialect.Act(board, f.Input), answered ? ZooDialect.Terminate : ZooDialect.Execute);
    }

    /// <summary>
    /// Checks on held-out questions (<paramref name="questions"/>: the mixed test split): reading one knowledge card,
    /// reading one candidate answer, reading the truth among <paramref name="members"/> - 1 dashes, and choosing the
    /// blackboard action. Deterministic for <paramref name="seed"/>.
    /// </summary>
    public static Dictionary<string, List<SkillItem>> ContextChecks(IReadOnlyList<SkillItem> questions, int members, int seed)
    {
        var r = new Random(seed);
        var d = new Dictionary<string, List<SkillItem>> { ["read_knowledge"] = [], ["read_answers"] = [], ["read_among"] = [], ["act"] = [] };
        foreach (var q in questions)
        {
            d["read_knowledge"].Add(q with { Input = ZooDialect.WithKnowledge([ZooDialect.Sentence(q.Output)], q.Input) });
            d["read_answers"].Add(q with { Input = ZooDialect.WithAnswers([q.Output], q.Input) });
            d["read_among"].Add(q with { Input = ZooDialect.WithAnswers(WithTruth(r, members, q.Output), q.Input) });
            bool answered = r.Next(2) == 0;
            var board = WithTruth(r, members - 1, answered ? q.Output : null);
            d["act"].Add(q with { Input = ZooDialect.Act(board, q.Input), Output = answered ? ZooDialect.Terminate : ZooDialect.Execute });
        }
        return d;
    }

    /// <summary>
    /// Checks of what a model knows about itself on <paramref name="questions"/>: <c>abstain</c> (it answers <c>-</c> to
    /// questions outside <paramref name="skill"/>) and <c>knowledge</c> (asked for knowledge, it states the sentence for its
    /// own questions and <c>-</c> for the others). <paramref name="skill"/> null: knows nothing.
    /// </summary>
    public static Dictionary<string, List<SkillItem>> SelfChecks(IReadOnlyList<SkillItem> questions, string? skill) => new()
    {
        ["abstain"] = questions.Where(q => q.Domain != skill).Select(q => q with { Output = ZooDialect.Unknown }).ToList(),
        ["knowledge"] = questions.Select(q => q with
        {
            Input = ZooDialect.Knowledge(q.Input),
            Output = q.Domain == skill ? ZooDialect.Sentence(q.Output) : ZooDialect.Unknown,
        }).ToList(),
    };
}
