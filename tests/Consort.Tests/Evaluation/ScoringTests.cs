using System.Text.Json.Nodes;
using Consort.Evaluation;
using Xunit;

namespace Consort.Tests.Evaluation;

public sealed class ScoringTests
{
    private static EvalItem Item(string json) => new((JsonObject)JsonNode.Parse(json)!, "1", 0, "test.json");

    private static readonly string[] Abcd = ["A", "B", "C", "D"];

    [Theory]
    [InlineData("The answer is (B)", "B")]
    [InlineData("B.", "B")]
    [InlineData("**C**", "C")]
    [InlineData("answer: d", "D")]
    [InlineData("I think it's B because A is wrong", "B")]
    [InlineData("(A) Paris is the capital.", "A")]
    [InlineData("Looking at each option, C and D fail, so the correct answer is A.", "A")]
    [InlineData("A is correct.", "A")]
    [InlineData("The answer is a bit unclear, but I would say D", "D")]
    [InlineData("Final answer: **B**", "B")]
    [InlineData("Option C fits best.", "C")]
    [InlineData("None of these: E", null)] // E is not a choice
    [InlineData("b) is right", "B")]
    [InlineData("a cat would say D", "D")]
    [InlineData("", null)]
    public void ExtractsLetterFromProse(string output, string? expected) =>
        Assert.Equal(expected, MultipleChoiceTask.ExtractLetter(output, Abcd));

    [Fact]
    public void MultipleChoiceScoresAgainstAnswerAndNormalizesForVoting()
    {
        var item = Item("""{"id": 5, "question": "2+2?", "choices": {"A": "3", "B": "4"}, "answer": "B"}""");
        var task = new MultipleChoiceTask();
        Assert.Equal(1, task.Score(item, "The answer is (B).").Score);
        Assert.Equal(0, task.Score(item, "A").Score);
        Assert.Equal("B", task.Score(item, "b)").Extracted);
        Assert.Equal(task.NormalizeAnswer("It's B.", item), task.NormalizeAnswer("**B**", item));
    }

    [Theory]
    [InlineData("so the result is \\boxed{3/4}", "0.75", true)]
    [InlineData("\\boxed{\\frac{3}{4}}", "3/4", true)]
    [InlineData("\\boxed{\\dfrac{1}{2}} and more", "0.5", true)]
    [InlineData("The total is $\\boxed{\\{1, 2\\}}$", "\\{1, 2\\}", true)]
    [InlineData("We get 1,000 apples.\nAnswer: 1,000", "1000", true)]
    [InlineData("Answer: 42.", "42", true)]
    [InlineData("Answer: 42.", "43", false)]
    [InlineData("He pays 6*14=84 and 2*14=28, total 112", "112", true)]
    [InlineData("He pays 6*14=84 and 2*14=28, total 112", "84", false)]
    [InlineData("Natalia sold 48/2 = 24 clips.\n#### 72", "72", true)]
    [InlineData("The answer is 50%", "50", true)]
    [InlineData("The answer is $18.00.", "18", true)]
    [InlineData("The answer is -0.5", "-1/2", true)]
    [InlineData("0.33333", "1/3", false)] // beyond the 1e-6 relative tolerance
    [InlineData("0.333333333333", "1/3", true)]
    [InlineData("Answer: The total is 112 dollars.", "112", true)]
    [InlineData("(A)", "A", true)]
    [InlineData("The answer is (B) because", "B", true)]
    [InlineData("Yes", "Yes", true)]
    [InlineData("valid", "invalid", false)]
    [InlineData("True", "False", false)]
    public void ExactMatchReadsAndComparesAnswers(string output, string gold, bool correct)
    {
        var item = Item($$"""{"id": 1, "input": "q", "output": {{JsonValue.Create(gold).ToJsonString()}}}""");
        Assert.Equal(correct ? 1.0 : 0.0, new ExactMatchTask().Score(item, output).Score);
    }

    [Fact]
    public void ExactMatchNumbersAndExtraction()
    {
        Assert.True(AnswerText.TryParseNumber("1,000", out var v) && v == 1000);
        Assert.True(AnswerText.TryParseNumber("\\frac{3}{4}", out v) && v == 0.75);
        Assert.True(AnswerText.TryParseNumber("-\\frac{1}{2}", out v) && v == -0.5);
        Assert.False(AnswerText.TryParseNumber("1/0", out _));
        Assert.False(AnswerText.TryParseNumber("abc", out _));
        Assert.Equal("a{b{c}}", AnswerText.LastBoxed("x \\boxed{1} y \\boxed{a{b{c}}} z"));
        Assert.Equal("7", AnswerText.ExtractFinal("3 + 4 = 7"));
        var task = new ExactMatchTask();
        Assert.Equal(task.NormalizeAnswer("\\boxed{3/4}"), task.NormalizeAnswer("The answer is 0.75."));
        Assert.NotEqual(task.NormalizeAnswer("Answer: 5"), task.NormalizeAnswer("Answer: 6"));
    }

    [Fact]
    public void F1PartialOverlapAndListGold()
    {
        // pred "barack obama president" vs gold "barack obama": common 2, P = 2/3, R = 1, F1 = 0.8.
        Assert.Equal(0.8, F1MatchTask.TokenF1("barack obama president", "barack obama"), 9);
        Assert.Equal("obama", F1MatchTask.NormalizeSquad("The Obama!"));

        var popqa = Item("""{"id": 1, "input": "What is the capital of Var?", "output": "[\"Toulon\", \"Port-la-Montagne\", \"Tolon\"]"}""");
        Assert.Equal(["Toulon", "Port-la-Montagne", "Tolon"], popqa.GoldList);
        var task = new F1MatchTask();
        var s = task.Score(popqa, "It is Tolon, a port city");
        // Best gold "tolon": pred tokens [it, is, tolon, port, city] -> P = 1/5, R = 1, F1 = 1/3.
        Assert.Equal(1.0 / 3, s.Score, 9);
        Assert.Equal(1, s.Metrics!["contains"]);
        Assert.Equal(0, s.Metrics!["exact"]);
        Assert.Equal(1, task.Score(popqa, "Answer: Toulon").Score);
        Assert.Equal(0, task.Score(popqa, "Marseille").Score);

        var arrayGold = Item("""{"id": 2, "input": "q", "output": ["New York City", "NYC"]}""");
        Assert.Equal(1, task.Score(arrayGold, "nyc").Score);
        Assert.Equal(1, new F1MatchTask("contains").Score(arrayGold, "I live in New York City now").Score);
    }

    [Fact]
    public void UnsupportedTaskTypesAreClearErrors()
    {
        var e = Assert.Throws<ConfigException>(() => EvalTaskTypes.Get("coding"));
        Assert.Contains("not supported offline", e.Message);
        Assert.Contains("not supported offline", Assert.Throws<ConfigException>(() => EvalTaskTypes.Get("reward_model")).Message);
        Assert.Contains("multiple_choice", Assert.Throws<ConfigException>(() => EvalTaskTypes.Get("nope")).Message);
    }

    [Fact]
    public void WilsonIntervalMatchesKnownValues()
    {
        // 8 of 10: Wilson 95% = [0.4902, 0.9433].
        var ci = ScoreStatistics.Wilson(8, 10);
        Assert.Equal(0.4902, ci.Low, 3);
        Assert.Equal(0.9433, ci.High, 3);
        Assert.Equal("normal", ScoreStatistics.Interval([0.5, 0.25, 1])!.Method);
        Assert.Null(ScoreStatistics.Interval([]));
    }
}
