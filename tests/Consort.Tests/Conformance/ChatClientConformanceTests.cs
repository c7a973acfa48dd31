using Consort.Config;
using Consort.LlamaCpp;
using Consort.Methods.Api;
using Consort.Methods.Logit;
using Consort.Methods.Text;
using Consort.Testing;
using Microsoft.Extensions.AI;

namespace Consort.Tests.Conformance;

/// <summary>Owns the models behind a client under test.</summary>
internal sealed class OwningChatClient(IChatClient inner, params IDisposable[] owned) : DelegatingChatClient(inner)
{
    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        foreach (var o in owned) o.Dispose();
    }
}

/// <summary>The llama.cpp chat client (plain prompt of a base model).</summary>
public sealed class LlamaChatClientConformance : ChatClientConformance
{
    protected override IChatClient CreateClient()
    {
        var m = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, Name = "stories260k" });
        return new OwningChatClient(m.Chat, m);
    }
}

/// <summary>The shared decode loop over the test kit's table model.</summary>
public sealed class TableChatClientConformance : ChatClientConformance
{
    protected override IList<ChatMessage> Messages => [new(ChatRole.User, "once upon a time")];
    protected override IChatClient CreateClient() =>
        new TableTokenModel("table", ["once upon a time there was a cat and a dog and a bird.", "the cat sat on the mat."]).AsModel().Chat;
}

/// <summary>A logit fusion's chat client. Its usage counts the members' work (as every collaboration's does), so the
/// output-limit test reads the fused token count instead.</summary>
public sealed class FusionChatClientConformance : ChatClientConformance
{
    protected override bool CountsTokens => false;

    [Fact]
    public async Task Max_output_tokens_limits_the_fused_tokens()
    {
        using var c = CreateClient();
        var r = await c.GetResponseAsync(Messages, new ChatOptions { Temperature = 0, MaxOutputTokens = 3 });
        Assert.Equal(3, ((UsageDetails)r.AdditionalProperties![ConsortKeys.FusedUsage]!).OutputTokenCount);
        Assert.Equal(3, r.GetTokenLogprobs()!.Length);
    }

    protected override IChatClient CreateClient()
    {
        var a = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, Name = "stories260k" });
        var b = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Llama2Xs, Name = "llama2xs" });
        var fused = MethodHarness.CreateAsync(new LogitFusionMethod(), [a, b]).GetAwaiter().GetResult();
        return new OwningChatClient(fused.Chat, fused, a, b);
    }
}

/// <summary>A collaboration client (single_model) built through a real session from a config spec.</summary>
public sealed class SessionSingleModelConformance : ChatClientConformance
{
    protected override IChatClient CreateClient()
    {
        var session = new ModelSession();
        var spec = new CollaborationSpec("solo", "single_model",
            [new GgufModelSpec("stories260k", TestPaths.Stories260K, TestPaths.Stories260K, new())], new());
        var model = session.BuildAsync(spec).GetAwaiter().GetResult();
        return new OwningChatClient(model.Chat, session);
    }
}

/// <summary>A text-level collaboration over scripted members (counts characters, ignores stops: those tests are skipped by the flags).</summary>
public sealed class MajorityVoteConformance : ChatClientConformance
{
    protected override bool CountsTokens => false;
    protected override bool SupportsStop => false;
    protected override IChatClient CreateClient()
    {
        var members = new[] { "a", "b", "c" }.Select(n => ScriptedChatClient.Model(n, c => $"the answer to {c.Prompt.Length}")).ToArray();
        return MethodHarness.CreateAsync(new MajorityVoteMethod(), members, """{"samples": 1}""").GetAwaiter().GetResult().Chat;
    }
}
