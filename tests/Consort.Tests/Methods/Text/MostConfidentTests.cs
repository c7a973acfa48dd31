using Consort.Methods.Text;
using Consort.Testing;
using Microsoft.Extensions.AI;

namespace Consort.Tests.Methods.Text;

public class MostConfidentTests
{
    [Fact]
    public async Task KeepsTheAnswerOfTheMostConfidentModel()
    {
        var unsure = ScriptedChatClient.WithLogprobs("unsure", _ => new("Paris", [-2f, -1.5f]));
        var sure = ScriptedChatClient.WithLogprobs("sure", _ => new("Lyon", [-0.1f, -0.05f]));
        var m = await MethodHarness.CreateAsync(new MostConfidentMethod(), [unsure, sure]);
        var r = await m.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "q")]);
        Assert.Equal("Lyon", r.Text);
        Assert.Equal("sure", r.GetAnsweredBy());
        Assert.Equal(2, r.GetTrace().Count);
        Assert.All(ScriptedChatClient.Of(unsure).Calls, c => Assert.True(c.Options.WantsLogprobs()));
    }

    [Fact]
    public void TextOnlyMembersAreRefusedBeforeWork()
    {
        var e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new MostConfidentMethod(),
            [ScriptedChatClient.Model("plain", _ => "x").Descriptor, ScriptedChatClient.WithLogprobs("lp", _ => "y").Descriptor]));
        Assert.Contains("model 'plain'", e.Message);
        Assert.Contains("token distributions", e.Message);
    }
}
