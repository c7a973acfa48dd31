using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Consort.Methods;
using Spectre.Console;

namespace Consort.Cli.Commands;

/// <summary><c>consort methods</c>: every method, its level, what it needs and its hyperparameters.</summary>
public sealed class MethodsCommand : ICliCommand
{
    /// <inheritdoc />
    public Command Build()
    {
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var cmd = new Command("methods", "List collaboration methods: level, requirements, hyperparameters and defaults.") { json };
        cmd.SetAction(pr =>
        {
            var methods = MethodRegistry.Methods;
            if (pr.GetValue(json))
            {
                var arr = new JsonArray(methods.Select(m => (JsonNode)new JsonObject
                {
                    ["name"] = m.Name, ["level"] = m.Level.ToString().ToLowerInvariant(), ["description"] = m.Description,
                    ["requires"] = m.Requires.Describe(), ["shared_vocabulary"] = m.RequiresSharedVocabulary,
                    ["min_models"] = m.MinModels, ["max_models"] = m.MaxModels == int.MaxValue ? null : m.MaxModels,
                    ["aliases"] = new JsonArray(MethodRegistry.Aliases.Where(a => a.Value == m.Name).Select(a => (JsonNode)JsonValue.Create(a.Key)!).ToArray()),
                    ["hyperparameters"] = new JsonArray(m.Hyperparameters.Select(h => (JsonNode)new JsonObject
                    {
                        ["name"] = h.Name, ["type"] = h.Type, ["default"] = h.Default, ["description"] = h.Description,
                    }).ToArray()),
                }).ToArray());
                Console.WriteLine(arr.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                return 0;
            }
            var table = new Table().Border(TableBorder.Rounded).Title("Consort methods");
            foreach (var c in new[] { "method", "level", "needs", "models", "hyperparameters (default)" }) table.AddColumn(c);
            foreach (var m in methods)
            {
                string needs = m.Requires.Describe() + (m.RequiresSharedVocabulary ? ", shared vocabulary" : "");
                string count = m.MaxModels == int.MaxValue ? $"{m.MinModels}+" : m.MinModels == m.MaxModels ? $"{m.MinModels}" : $"{m.MinModels}-{m.MaxModels}";
                string hp = m.Hyperparameters.Count == 0 ? "-" : string.Join("\n", m.Hyperparameters.Select(h => $"{h.Name} = {h.Default ?? "(auto)"}"));
                var aliases = MethodRegistry.Aliases.Where(a => a.Value == m.Name).Select(a => a.Key).ToList();
                table.AddRow(Markup.Escape(m.Name + (aliases.Count > 0 ? $"\n(MoCo: {string.Join(", ", aliases)})" : "") + "\n" + m.Description),
                    m.Level.ToString().ToLowerInvariant(), Markup.Escape(needs), count, Markup.Escape(hp));
            }
            AnsiConsole.Write(table);
            AnsiConsole.MarkupLine("[grey]Descriptions of each hyperparameter: consort methods --json[/]");
            AnsiConsole.MarkupLine($"[grey]Every method also accepts: {Markup.Escape(string.Join(", ", MethodRegistry.Common.Select(c => $"{c.Name} ({c.Default})")))}[/]");
            return 0;
        });
        return cmd;
    }
}
