using Consort.Formats.Gguf;
using Consort.Decoding;
using Consort.LlamaCpp;
using Consort.Testing;
using Microsoft.Extensions.AI;
using Xunit;

namespace Consort.Tests.LlamaCpp;

/// <summary>The chat-template path, on a copy of stories260K with a ChatML template added to its metadata.</summary>
public sealed class LlamaTemplateTests
{
    private const string ChatMl =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}" +
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    private static void CopyWithTemplate(string source, string dest, string template)
    {
        using var g = GgufFile.Open(source);
        using var w = new GgufWriter(dest);
        w.CopyMetadata(g);
        w.SetMetadata("tokenizer.chat_template", GgufValue.Of(template));
        foreach (var t in g.Tensors) w.AddTensor(t.Name, t.Dimensions, t.Type);
        foreach (var t in g.Tensors) w.WriteTensorData(t.Name, g.TensorBytes(t));
        w.Commit();
    }

    [Fact]
    public async Task ModelWithTemplate_FormatsChatThroughIt()
    {
        using var dir = new TempDir();
        var path = dir.File("chatml.gguf");
        CopyWithTemplate(TestPaths.Stories260K, path, ChatMl);
        using var m = LlamaModelFactory.Load(new LlamaModelOptions { Path = path, ContextSize = 128, MaxSequences = 1 });
        var enc = (LlamaPromptEncoder)m.Chat.GetService(typeof(IChatPromptEncoder))!;
        Assert.True(enc.UsesTemplate);
        ChatMessage[] msgs = [new(ChatRole.System, "Be nice."), new(ChatRole.User, "Once upon a time")];
        var expectedText = "<|im_start|>system\nBe nice.<|im_end|>\n<|im_start|>user\nOnce upon a time<|im_end|>\n<|im_start|>assistant\n";
        var tok = ((LlamaTokenModel)m.Tokens!).LlamaTokenizer;
        Assert.Equal(tok.Encode(expectedText, addBos: true, special: true), enc.EncodePrompt(msgs));
        var r = await m.Chat.GetResponseAsync(msgs, new ChatOptions { MaxOutputTokens = 5 });
        Assert.Equal(5, r.Usage!.OutputTokenCount);
    }
}
