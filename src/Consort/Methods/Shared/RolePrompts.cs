using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Consort.Methods;

/// <summary>
/// The prompts a method sends in each role (answer, revise, critique, summarize, rank, fuse, write knowledge, ...),
/// as editable templates: a method declares its roles with default templates once; a run may replace any of them
/// with the <c>prompts</c> hyperparameter (an object of role: template) or <c>prompts_file</c> (a JSON file of the
/// same shape). Templates use <c>{name}</c> placeholders (<c>{{</c> and <c>}}</c> for literal braces); each role
/// declares which placeholders it fills, so an unknown role or placeholder is an error before any work.
/// <c>{format}</c> is always available: the task's answer instruction (<see cref="AnswerExtractor.Instruction"/>),
/// so extraction and scoring still work after any role prompt.
/// </summary>
public sealed class RolePrompts
{
    private readonly IReadOnlyDictionary<string, Role> _roles;

    /// <summary>One role: its default template and the placeholders it fills.</summary>
    /// <param name="Template">Default template.</param>
    /// <param name="Placeholders">Placeholders the method fills for this role (besides {format}).</param>
    public sealed record Role(string Template, params string[] Placeholders);

    /// <summary>Declares roles with their defaults (checked: every default uses only its declared placeholders).</summary>
    public RolePrompts(IReadOnlyDictionary<string, Role> roles)
    {
        _roles = roles;
        foreach (var (name, role) in roles) Check(name, role.Template, role, "default");
    }

    private RolePrompts(IReadOnlyDictionary<string, Role> roles, bool _) => _roles = roles;

    /// <summary>The role names.</summary>
    public IEnumerable<string> Roles => _roles.Keys;

    /// <summary>The template of a role.</summary>
    public string Template(string role) => _roles.TryGetValue(role, out var r) ? r.Template : throw new ArgumentException($"no role '{role}'");

    /// <summary>
    /// These roles with a run's overrides applied (<paramref name="overrides"/>, then the file's, both optional),
    /// each checked: unknown roles and placeholders are errors naming the role, the placeholder and the valid ones.
    /// </summary>
    /// <param name="overrides">role: template, from the <c>prompts</c> hyperparameter.</param>
    /// <param name="file">A JSON file of role: template (relative to <paramref name="baseDirectory"/>).</param>
    /// <param name="baseDirectory">Folder of the config.</param>
    /// <param name="where">Message prefix (run and method).</param>
    /// <param name="ignoreUnknownFileRoles">Skip the file's roles this method does not have (a file shared by several
    /// methods, such as the zoo's); placeholders of the roles it has are still checked.</param>
    public RolePrompts With(IReadOnlyDictionary<string, string>? overrides, string? file, string baseDirectory, string where, bool ignoreUnknownFileRoles = false)
    {
        var roles = new Dictionary<string, Role>(_roles, StringComparer.Ordinal);
        if (file is not null)
        {
            var path = Path.GetFullPath(Path.Combine(baseDirectory, file));
            if (!File.Exists(path)) throw new ConfigException($"{where}: prompts_file not found: {path}");
            JsonObject obj;
            try
            {
                // Size, depth and duplicate roles bounded like every config (SafeJson).
                obj = Consort.Formats.SafeJson.ParseNodeFile(path, Limits.MaxConfigBytes, "a prompts file", Consort.Formats.SafeJson.Kind.Config) as JsonObject
                      ?? throw new ConfigException($"{where}: {path}: a prompts file is a JSON object of role: template");
            }
            catch (JsonException e) { throw new ConfigException($"{where}: {path}: invalid JSON ({e.Message})", e); }
            foreach (var (role, node) in obj)
            {
                if (ignoreUnknownFileRoles && !_roles.ContainsKey(role)) continue;
                Apply(roles, role, node is JsonValue v && v.TryGetValue<string>(out var t) ? t : throw new ConfigException($"{where}: {path}: role '{Limits.ForMessage(role)}' must map to a string"), where);
            }
        }
        if (overrides is not null)
            foreach (var (role, template) in overrides) Apply(roles, role, template, where);
        return new RolePrompts(roles, true);
    }

    private void Apply(Dictionary<string, Role> roles, string role, string template, string where)
    {
        if (!_roles.TryGetValue(role, out var declared))
            throw new ConfigException($"{where}: hyperparameter 'prompts' names unknown role '{Limits.ForMessage(role)}'; roles: {string.Join(", ", _roles.Keys)}");
        Check(role, template, declared, where);
        roles[role] = declared with { Template = template };
    }

    private static void Check(string role, string template, Role declared, string where)
    {
        foreach (var name in Placeholders(template))
            if (name != "format" && !declared.Placeholders.Contains(name))
                throw new ConfigException($"{where}: prompt of role '{role}' uses unknown placeholder '{{{Limits.ForMessage(name)}}}'; available: {string.Join(", ", declared.Placeholders.Append("format").Select(p => "{" + p + "}"))}");
    }

    /// <summary>The placeholder names a template uses.</summary>
    public static IEnumerable<string> Placeholders(string template)
    {
        for (int i = 0; i < template.Length; i++)
        {
            if (template[i] == '{')
            {
                if (i + 1 < template.Length && template[i + 1] == '{') { i++; continue; }
                int end = template.IndexOf('}', i + 1);
                if (end < 0) yield break;
                yield return template[(i + 1)..end];
                i = end;
            }
        }
    }

    /// <summary>Fills a role's template; <c>{format}</c> is the answer instruction (empty when the task has none).</summary>
    public string Render(string role, IReadOnlyDictionary<string, string> values, AnswerExtractor? answers = null)
    {
        var template = Template(role);
        var sb = new StringBuilder(template.Length + 64);
        for (int i = 0; i < template.Length; i++)
        {
            char c = template[i];
            if (c == '{' && i + 1 < template.Length && template[i + 1] == '{') { sb.Append('{'); i++; continue; }
            if (c == '}' && i + 1 < template.Length && template[i + 1] == '}') { sb.Append('}'); i++; continue; }
            if (c == '{')
            {
                int end = template.IndexOf('}', i + 1);
                if (end > i)
                {
                    var name = template[(i + 1)..end];
                    sb.Append(name == "format" ? answers?.Instruction ?? "" : values.TryGetValue(name, out var v) ? v : "");
                    i = end;
                    continue;
                }
            }
            sb.Append(c);
        }
        return sb.ToString();
    }
}
