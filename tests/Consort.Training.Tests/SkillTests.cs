using System.Text.Json;
using Consort.Testing;
using Consort.Training;
using Consort.Training.Skills;

namespace Consort.Training.Tests;

public class SkillTests
{
    [Fact]
    public void Generators_are_deterministic_for_a_seed_and_differ_across_seeds()
    {
        string Dump(int seed) => JsonSerializer.Serialize(ZooBuilder.GenerateData(seed).ToDictionary(kv => kv.Key, kv => new { kv.Value.Train, kv.Value.Dev, kv.Value.Test }));
        Assert.Equal(Dump(7), Dump(7));
        Assert.NotEqual(Dump(7), Dump(8));
    }

    [Fact]
    public void Arithmetic_answers_are_correct_and_held_out_questions_are_not_trained()
    {
        var d = ArithmeticSkill.Generate(3);
        Assert.Equal(900, d.Train.Count + d.Dev.Count + d.Test.Count);
        Assert.Empty(d.Train.Select(i => i.Input).Intersect(d.Test.Select(i => i.Input)));
        Assert.Empty(d.Dev.Select(i => i.Input).Intersect(d.Test.Select(i => i.Input)));
        foreach (var item in d.Train.Concat(d.Dev).Concat(d.Test))
        {
            var q = item.Input["Q: ".Length..item.Input.IndexOf('=')].Split('+').Select(int.Parse).ToArray();
            Assert.Equal((q[0] + q[1]).ToString(), item.Output);
            Assert.InRange(q[0], 0, 9); Assert.InRange(q[1], 10, 99);
        }
    }

    [Fact]
    public void Facts_halves_are_disjoint_and_consistent()
    {
        var w = new FactsWorld(11);
        var a = w.Half(FactsWorld.HalfA); var b = w.Half(FactsWorld.HalfB);
        Assert.Equal(100, a.Train.Count); Assert.Equal(100, b.Train.Count);
        Assert.Empty(a.Train.Select(i => i.Input).Intersect(b.Train.Select(i => i.Input)));
        Assert.Empty(w.Others().Select(i => i.Input).Intersect(a.Train.Concat(b.Train).Select(i => i.Input)));
        Assert.Empty(a.Dev.Select(i => i.Id).Intersect(a.Test.Select(i => i.Id)));
        Assert.Equal(w.People.Length, w.People.Distinct().Count());
        var facts = a.Train.ToDictionary(i => i.Input, i => i.Output);
        Assert.All(a.Test, i => Assert.Equal(facts[i.Input], i.Output)); // test questions are facts the expert learns
        Assert.All(a.Train, i => Assert.Contains(i.Output, w.Places));
    }

    [Fact]
    public void Scorer_accepts_every_gold_answer_and_rejects_wrong_ones()
    {
        var all = ZooBuilder.GenerateData(5).Values.SelectMany(d => d.Train.Concat(d.Dev).Concat(d.Test)).ToList();
        Assert.All(all, i =>
        {
            Assert.True(ExactMatch.IsMatch(i.Output, i.Output));
            Assert.True(ExactMatch.IsMatch(" " + i.Output + " ", i.Output)); // what the models generate after "A:"
            Assert.False(ExactMatch.IsMatch(i.Output + "x", i.Output));
        });
        Assert.True(ExactMatch.IsMatch("55.0", "55"));
        Assert.False(ExactMatch.IsMatch("56", "55"));
    }

    [Fact]
    public void Datasets_are_written_in_the_shared_layout()
    {
        using var dir = new TempDir();
        var data = ZooBuilder.GenerateData(2);
        var path = dir.File("mixed.json");
        ZooBuilder.WriteDataset(path, data["mixed"]);
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        Assert.Equal("exact_match", doc.RootElement.GetProperty("task_type").GetString());
        var test = doc.RootElement.GetProperty("test").EnumerateArray().ToList();
        Assert.Equal(180, test.Count);
        Assert.All(test, e => { e.GetProperty("id"); e.GetProperty("input"); e.GetProperty("output"); });
        Assert.Equal(3, test.Select(e => e.GetProperty("domain").GetString()).Distinct().Count());
        Assert.Contains("+", File.ReadAllText(path)); // readable, not \u002B
    }

    [Fact]
    public void Packed_batches_mask_prompts_when_answer_only()
    {
        var ex = TrainingExample.FromPair("Q: 1+10= A:", " 11", answerOnly: true);
        Assert.Equal(ByteTokenizer.Bos, ex.Tokens[0]); Assert.Equal(ByteTokenizer.Eos, ex.Tokens[^1]);
        Assert.Equal(" 11".Length + 1, ex.Counts.Count(c => c));
        var batch = new BatchSampler(_ => ex, 2, 16, 1).Next();
        Assert.Equal(32, batch.Inputs.Length);
        Assert.Equal(ByteTokenizer.Bos, batch.Inputs[0]);
        for (int i = 0; i < 15; i++) Assert.Equal(batch.Inputs[i + 1], batch.Targets[i]);
        // Window 0: inputs "<s>Q: 1+10= A: 11</s><s>..."; the targets " ", "1", "1", "</s>" (positions 11..14) count.
        Assert.Equal(new float[] { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0 }, batch.Mask[..16]);
    }
}
