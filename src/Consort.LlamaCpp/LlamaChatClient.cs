using System.Text;
using Consort.Decoding;
using LLama;
using Microsoft.Extensions.AI;

namespace Consort.LlamaCpp;

/// <summary>
/// Encodes a chat for a llama.cpp model: with the model's chat template when the GGUF has one
/// (llama.cpp's built-in template detection), else as the plain concatenation of the message texts
/// with BOS (base models such as the TinyStories ones).
/// </summary>
public sealed class LlamaPromptEncoder : IChatPromptEncoder
{
    private readonly LlamaTokenModel _model;
    private readonly PlainPromptEncoder _plain;
    private volatile bool _templateUnsupported;

    /// <summary>Creates an encoder for <paramref name="model"/>.</summary>
    public LlamaPromptEncoder(LlamaTokenModel model)
    {
        _model = model;
        _plain = new PlainPromptEncoder(model.Tokenizer, addBos: model.LlamaTokenizer.AddsBos);
    }

    /// <summary>True when prompts go through the model's chat template.</summary>
    public bool UsesTemplate => _model.HasChatTemplate && !_templateUnsupported;

    /// <inheritdoc />
    public int[] EncodePrompt(IEnumerable<ChatMessage> messages)
    {
        if (!UsesTemplate) return _plain.EncodePrompt(messages);
        string text;
        try
        {
            var template = new LLamaTemplate(_model.Weights, strict: false) { AddAssistant = true };
            foreach (var m in messages)
                template.Add(m.Role.Value, m.Text ?? "");
            text = Encoding.UTF8.GetString(template.Apply());
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // llama.cpp recognizes the common templates only (no Jinja engine); a model with another one
            // stays usable with plain prompts rather than failing every call.
            _templateUnsupported = true;
            return _plain.EncodePrompt(messages);
        }
        // Templates spell out their control tokens, so parse them as specials.
        return _model.LlamaTokenizer.Encode(text, addBos: _model.LlamaTokenizer.AddsBos && !text.StartsWith(BosText(), StringComparison.Ordinal), special: true);
    }

    private string BosText() =>
        _model.Tokenizer.Bos is { } b ? _model.Tokenizer.Decode([b]) is { Length: > 0 } s ? s : "\u0000" : "\u0000";
}

/// <summary>The chat client of a llama.cpp model (<see cref="TokenChatClient"/> with <see cref="LlamaPromptEncoder"/>).</summary>
public sealed class LlamaChatClient(LlamaTokenModel model, int? defaultSeed = null)
    : TokenChatClient(model, new LlamaPromptEncoder(model), defaultSeed);
