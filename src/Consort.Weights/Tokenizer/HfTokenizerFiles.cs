using System.Text.Json;
using System.Text.Json.Nodes;
using Consort.Formats.Conversion;

namespace Consort.Weights.Tokenizer;

/// <summary>
/// Writes the Hugging Face tokenizer files of a merge's output folder: the tokenizer source's files, with the tokens
/// the output vocabulary adds appended as added tokens (as mergekit's tokenizer does with add_tokens), the chat
/// template in tokenizer_config.json, and config.json's vocab_size set to the output's rows.
/// </summary>
public static class HfTokenizerFiles
{
    private static readonly string[] Files = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model", "vocab.json", "merges.txt"];

    /// <summary>
    /// Writes tokenizer files into <paramref name="output"/> from <paramref name="folder"/> (the template's, or the named
    /// tokenizer source's), adding the plan's new tokens; null plan or template keeps the files as they are.
    /// </summary>
    public static void Write(string output, string folder, TokenizerPlan? plan, string? chatTemplate)
    {
        string from = plan is not null && !plan.Settings.IsUnion && !plan.Settings.IsBase && Directory.Exists(plan.Settings.Source) ? plan.Settings.Source : folder;
        foreach (var f in Files)
        {
            var src = Path.Combine(from, f);
            if (File.Exists(src) && Path.GetFullPath(src) != Path.GetFullPath(Path.Combine(output, f))) File.Copy(src, Path.Combine(output, f), overwrite: true);
        }
        var options = new JsonSerializerOptions { WriteIndented = true };
        if (plan is not null)
        {
            var known = Vocabulary.ReadTokenizerJson(output);
            if (known is not null)
            {
                // Tokens of the output vocabulary the copied tokenizer lacks become added tokens at their output ids.
                int have = TokenCount(known);
                var added = known["added_tokens"] as JsonArray ?? [];
                known["added_tokens"] = added;
                var config = ReadObject(Path.Combine(output, "tokenizer_config.json"));
                var decoder = config?["added_tokens_decoder"] as JsonObject;
                for (int id = have; id < plan.Output.Count; id++)
                {
                    var t = plan.Output.Tokens[id];
                    var entry = new JsonObject { ["id"] = id, ["content"] = t.Text, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = !t.Special, ["special"] = t.Special };
                    added.Add(entry);
                    if (decoder is not null)
                        decoder[id.ToString(System.Globalization.CultureInfo.InvariantCulture)] = new JsonObject { ["content"] = t.Text, ["lstrip"] = false, ["normalized"] = !t.Special, ["rstrip"] = false, ["single_word"] = false, ["special"] = t.Special };
                }
                File.WriteAllText(Path.Combine(output, "tokenizer.json"), known.ToJsonString(options));
                if (config is not null) File.WriteAllText(Path.Combine(output, "tokenizer_config.json"), config.ToJsonString(options));
            }
            var cfgPath = Path.Combine(output, "config.json");
            if (ReadObject(cfgPath) is { } cfg)
            {
                cfg["vocab_size"] = plan.Rows;
                File.WriteAllText(cfgPath, cfg.ToJsonString(options));
            }
        }
        if (chatTemplate is not null)
        {
            var path = Path.Combine(output, "tokenizer_config.json");
            var cfg = ReadObject(path) ?? new JsonObject();
            cfg["chat_template"] = chatTemplate;
            File.WriteAllText(path, cfg.ToJsonString(options));
        }
    }

    // One past the highest id of tokenizer.json's vocab and added tokens.
    private static int TokenCount(JsonObject json)
    {
        int max = -1;
        if (json["model"]?["vocab"] is JsonObject v) foreach (var (_, id) in v) if (id?.GetValueKind() == JsonValueKind.Number) max = Math.Max(max, id.GetValue<int>());
        if (json["added_tokens"] is JsonArray a) foreach (var e in a) if (e?["id"]?.GetValueKind() == JsonValueKind.Number) max = Math.Max(max, e["id"]!.GetValue<int>());
        return max + 1;
    }

    private static JsonObject? ReadObject(string path)
    {
        if (!File.Exists(path)) return null;
        try { return JsonNode.Parse(File.ReadAllBytes(path)) as JsonObject; }
        catch (JsonException e) { throw new ModelFileException(path, "is not valid JSON: " + e.Message, e); }
    }

    /// <summary>Side files of a Hugging Face folder that are not tokenizer files (copied beside merged weights).</summary>
    public static IEnumerable<string> OtherSideFiles => ModelConverter.SideFiles.Except(Files);
}
