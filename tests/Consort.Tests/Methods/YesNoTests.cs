using Consort.Methods;

namespace Consort.Tests.Methods;

public class YesNoTests
{
    [Theory]
    [InlineData("Yes", true)]
    [InlineData("  **Yes**, I am.", true)]
    [InlineData("yes i am confident", true)]
    [InlineData("Confident.", true)]
    [InlineData("\nSure!", true)]
    [InlineData("No.", false)]
    [InlineData("I am not confident.", false)]
    [InlineData("I'm not very sure about it", false)]
    [InlineData("Unconfident", false)]
    [InlineData("I don't feel certain", false)]
    [InlineData("It isn't certain, yes", false)]
    [InlineData("nope", false)]
    [InlineData("", null)]
    [InlineData("The answer is 42", null)]
    public void YesNoReadsSmallModelReplies(string text, bool? expected) => Assert.Equal(expected, YesNo.Parse(text));
}
