using Consort.Methods.Text;
using Consort.Tests.Fakes;
using Microsoft.Extensions.AI;

namespace Consort.Tests.Methods.Text;

public class MostConfidentTests
{
    [Fact]
    public async Task KeepsTheAnswerOfTheMostConfidentModel()
    {
        var unsure = FakeChat.WithLogprobs("unsure", _ => ("Paris", [-2f, -1.5f]));
        var sure = FakeChat.WithLogprobs("sure", _ => ("Lyon", [-0.1f, -0.05f]));
        var m = await new MostConfidentMethod().CreateAsync(new() { Name = "mc", Models = [unsure, sure], Hyperparameters = new("most_confident", null) });
        var r = await m.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "q")]);
        Assert.Equal("Lyon", r.Text);
        Assert.Equal("sure", r.AdditionalProperties!["consort.answered_by"]);
        Assert.Equal(2, r.GetTrace().Count);
    }
}
