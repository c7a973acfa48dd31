using Consort.Methods.Api.Routing;

namespace Consort.Tests.Methods.Api.Routing;

public class ChoiceParserTests
{
    private static readonly string[] Names = ["arith", "facts_a", "facts_b"];

    [Theory]
    [InlineData("facts_b", 2)]
    [InlineData("I would pick FACTS_A for this.", 1)]
    [InlineData("2", 1)]
    [InlineData("Model 3", 2)]
    [InlineData("The best is model 1, not model 3.", 0)]
    [InlineData("(B)", 1)]
    [InlineData("Option C.", 2)]
    [InlineData("arith, then 3", 0)]
    [InlineData("A", 0)]
    public void ReadsNamesNumbersAndLetters(string answer, int expected) => Assert.Equal(expected, ChoiceParser.Parse(answer, Names));

    [Theory]
    [InlineData("")]
    [InlineData("I cannot tell.")]
    [InlineData("Model 7")]
    [InlineData("A good question")] // the article, not a letter
    [InlineData("facts_c")]
    [InlineData("3.5")]
    public void NamesNothingWhenNoCandidateIsMentioned(string answer) => Assert.Null(ChoiceParser.Parse(answer, Names));

    [Fact]
    public void ZeroBasedNumbersForTheSwitchSelector()
    {
        Assert.Equal(0, ChoiceParser.Parse("0", Names, firstNumber: 0));
        Assert.Equal(2, ChoiceParser.Parse(" 2", Names, firstNumber: 0));
        Assert.Null(ChoiceParser.Parse("3", Names, firstNumber: 0));
    }
}
