using Consort.Training;
using Consort.Training.Skills;

namespace Consort.Training.Tests;

/// <summary>
/// The team stage's training data: the reader (generalist) never sees a held-out question or a fact of either half, and
/// answers only with what its context holds (or "-"); a team expert answers its own facts, says "-" to the other half's
/// people and to the other skill, and states its knowledge answer-first.
/// </summary>
public class TeamSkillsTests
{
    private const int Seed = 1234;

    private static List<(string Prompt, string Answer)> Draw(Func<Random, TrainingExample> source, int n)
    {
        var rng = new Random(5);
        return Enumerable.Range(0, n).Select(_ =>
        {
            var ex = source(rng);
            int first = Array.IndexOf(ex.Counts, true);
            return (ByteTokenizer.Decode(ex.Tokens[1..first]), ByteTokenizer.Decode(ex.Tokens[first..]).Trim());
        }).ToList();
    }

    [Fact]
    public void The_reader_learns_only_to_answer_from_its_context_never_a_held_out_question_or_a_fact_of_the_halves()
    {
        var data = ZooBuilder.GenerateData(Seed);
        var world = new FactsWorld(Seed);
        var team = new TeamSkills(Seed, world, data[ArithmeticSkill.Name]);
        var halves = world.People.Take(200).ToHashSet();
        var heldOut = data[ArithmeticSkill.Name].Dev.Concat(data[ArithmeticSkill.Name].Test).Select(i => i.Input).ToHashSet();
        var examples = Draw(team.Generalist(), 3000);
        int read = 0;
        foreach (var (prompt, answer) in examples)
        {
            var question = prompt[(prompt.LastIndexOf('\n') + 1)..];
            Assert.DoesNotContain(question, heldOut);
            Assert.DoesNotContain(halves, p => prompt.Contains(" " + p + " "));
            if (answer is ZooDialect.Unknown or ZooDialect.Execute or ZooDialect.Terminate) continue;
            // Anything else it says is written in its context.
            Assert.Contains(answer, prompt[..prompt.LastIndexOf('\n')]);
            read++;
        }
        Assert.InRange(read, 1500, 3000);
        // The answers it reads are drawn at random, not the true ones: reading, not recall, gives its answer.
        var sums = examples.Where(e => e.Prompt.StartsWith("Answers: ") && e.Prompt.Contains('+') && e.Answer != ZooDialect.Unknown).ToList();
        int right = sums.Count(e => { var q = e.Prompt[(e.Prompt.LastIndexOf("Q: ") + 3)..e.Prompt.LastIndexOf('=')].Split('+'); return (int.Parse(q[0]) + int.Parse(q[1])).ToString() == e.Answer; });
        Assert.True(sums.Count > 300 && right < sums.Count / 10, $"{right} of {sums.Count} read sums are the true sums");
    }

    [Fact]
    public void A_team_expert_answers_its_own_facts_says_dash_to_the_other_half_and_states_knowledge_answer_first()
    {
        var data = ZooBuilder.GenerateData(Seed);
        var world = new FactsWorld(Seed);
        var team = new TeamSkills(Seed, world, data[ArithmeticSkill.Name]);
        var own = data[FactsWorld.HalfA].Train.ToDictionary(i => i.Input, i => i.Output);
        var other = data[FactsWorld.HalfB].Train.Select(i => i.Input).ToHashSet();
        var examples = Draw(team.Expert(FactsWorld.HalfA, data[FactsWorld.HalfA].Train.Select(i => new Fact(i.Input, i.Output)).ToList()), 3000);
        int mine = 0, dashes = 0, cards = 0;
        foreach (var (prompt, answer) in examples)
        {
            var question = prompt[(prompt.LastIndexOf('\n') + 1)..];
            if (question.StartsWith("Act? ")) continue; // a blackboard choice without context
            bool knowledge = question.StartsWith("Fact? ");
            if (knowledge) question = question["Fact? ".Length..];
            if (own.TryGetValue(question, out var home))
            {
                if (prompt.StartsWith("Act? ")) continue;
                Assert.Equal(knowledge ? ZooDialect.Sentence(home) : home, answer);
                if (knowledge) cards++; else mine++;
            }
            else if (!prompt.StartsWith("Act? "))
            {
                Assert.Equal(ZooDialect.Unknown, answer);
                if (other.Contains(question)) dashes++;
            }
        }
        Assert.True(mine > 500 && dashes > 200 && cards > 200, $"own {mine}, other half {dashes}, cards {cards}");
    }
}
