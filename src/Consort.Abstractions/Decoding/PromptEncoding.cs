using Microsoft.Extensions.AI;

namespace Consort.Decoding;

/// <summary>Turns chat messages into a prompt's token ids (a model's chat template, or plain text).</summary>
public interface IChatPromptEncoder
{
    /// <summary>The prompt tokens for <paramref name="messages"/>.</summary>
    int[] EncodePrompt(IEnumerable<ChatMessage> messages);
}

/// <summary>The one plain-text rendering of a chat, for base models without a template (generation, scoring, routing).</summary>
public static class PlainPrompt
{
    /// <summary>The non-empty message texts in order, one per line.</summary>
    public static string Render(IEnumerable<ChatMessage> messages) =>
        string.Join("\n", messages.Select(m => m.Text).Where(t => !string.IsNullOrEmpty(t)));
}

/// <summary>Encodes a chat as <see cref="PlainPrompt.Render"/> of its messages, for base models without a template.</summary>
public sealed class PlainPromptEncoder(ITokenizer tokenizer, bool addBos) : IChatPromptEncoder
{
    /// <summary>Same as <see cref="PlainPrompt.Render"/>.</summary>
    public static string Join(IEnumerable<ChatMessage> messages) => PlainPrompt.Render(messages);

    /// <inheritdoc />
    public int[] EncodePrompt(IEnumerable<ChatMessage> messages) => tokenizer.Encode(PlainPrompt.Render(messages), addBos);
}
