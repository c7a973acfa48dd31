using Consort.Weights.Config;

namespace Consort.Weights.Tokenizer;

/// <summary>
/// mergekit's <c>chat_template</c>: "auto" takes the template most of the inputs share (none when none has one), a
/// built-in name gives that format, anything else must be a Jinja template (at least 20 characters with a '{').
/// The built-ins are Consort's own Jinja for the same formats mergekit ships.
/// </summary>
public static class ChatTemplates
{
    /// <summary>Built-in templates by name.</summary>
    public static readonly IReadOnlyDictionary<string, string> BuiltIn = new Dictionary<string, string>
    {
        ["chatml"] = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}"
            + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
        ["llama3"] = "{% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}"
            + "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
            + "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
        ["alpaca"] = "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] | trim + '\\n\\n' }}"
            + "{% elif message['role'] == 'user' %}{{ '### Instruction:\\n' + message['content'] | trim + '\\n\\n' }}"
            + "{% elif message['role'] == 'assistant' %}{{ '### Response:\\n' + message['content'] | trim + '\\n\\n' }}{% endif %}{% endfor %}"
            + "{% if add_generation_prompt %}{{ '### Response:\\n' }}{% endif %}",
        ["mistral"] = "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ ' [INST] ' + message['content'] + ' [/INST]' }}"
            + "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + eos_token }}{% endif %}{% endfor %}",
        ["exaone"] = "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}{{ '[|system|][|endofturn|]\\n' }}{% endif %}"
            + "{{ '[|' + message['role'] + '|]' + message['content'] }}{% if message['role'] == 'user' %}{{ '\\n' }}{% else %}{{ '[|endofturn|]\\n' }}{% endif %}{% endfor %}"
            + "{% if add_generation_prompt %}{{ '[|assistant|]' }}{% endif %}",
    };

    /// <summary>Checks a chat_template setting before any work (ConfigException naming the problem).</summary>
    public static void Validate(string? setting)
    {
        if (setting is null || setting == "auto" || BuiltIn.ContainsKey(setting)) return;
        if (setting.Length < 20 || !setting.Contains('{'))
            throw new ConfigException($"chat_template '{setting}' is neither auto, a built-in template ({string.Join(", ", BuiltIn.Keys)}) nor a Jinja template");
    }

    /// <summary>The template to write for <paramref name="setting"/>, given the inputs' templates; null leaves the output's as it is.</summary>
    public static string? Resolve(string? setting, IEnumerable<string?> inputTemplates)
    {
        Validate(setting);
        if (setting is null) return null;
        if (setting == "auto")
            return inputTemplates.Where(t => !string.IsNullOrWhiteSpace(t)).Select(t => t!.Trim())
                .GroupBy(t => t).OrderByDescending(g => g.Count()).Select(g => g.Key).FirstOrDefault();
        return BuiltIn.TryGetValue(setting, out var t) ? t : setting;
    }
}
