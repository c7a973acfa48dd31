using YamlDotNet.Core;
using YamlDotNet.Core.Events;
using YamlDotNet.RepresentationModel;

namespace Consort.Weights.Config;

/// <summary>
/// Loads a YAML document with limits, so no merge config can exhaust the stack or memory: a size limit
/// (<see cref="Limits.MaxYamlBytes"/>), a nesting limit (<see cref="Limits.MaxDocumentDepth"/>), and a limit on the
/// nodes the document has once its aliases are expanded (<see cref="Limits.MaxYamlNodes"/>, against "billion laughs"
/// alias bombs). Duplicate keys are refused with their name, and keys must be plain scalars. The checks run over
/// the parser's event stream, which never recurses and never expands an alias, before the representation model
/// (which would) is built.
/// </summary>
public static class SafeYaml
{
    /// <summary>Reads, checks and loads <paramref name="path"/>.</summary>
    /// <exception cref="ConfigException">Too large, too deep, an alias bomb, a duplicate or complex key, or invalid YAML.</exception>
    public static YamlStream Load(string path)
    {
        if (Directory.Exists(path)) throw new ConfigException($"{path}: is a folder, not a YAML file");
        if (!File.Exists(path)) throw new ConfigException($"{path}: merge config not found");
        Limits.CheckFileSize(path, Limits.MaxYamlBytes, "a merge config");
        string text = File.ReadAllText(path);
        return Parse(text, path);
    }

    /// <summary>Checks and loads YAML text; <paramref name="where"/> names it in errors.</summary>
    public static YamlStream Parse(string text, string where)
    {
        try
        {
            Check(text, where);
            var yaml = new YamlStream();
            using var reader = new StringReader(text);
            yaml.Load(reader);
            return yaml;
        }
        catch (YamlException e)
        {
            throw new ConfigException($"{where}: invalid YAML at line {e.Start.Line}: {MessageText.Escape(e.Message)}", e);
        }
        catch (InvalidOperationException e)
        {
            // YamlDotNet's scanner gives up on some malformed input this way (found by fuzzing: a comment inside a flow list).
            throw new ConfigException($"{where}: invalid YAML: the parser could not read it ({MessageText.Escape(e.Message)})", e);
        }
    }

    private sealed class Frame(bool mapping, string? anchor)
    {
        public bool Mapping { get; } = mapping;
        public string? Anchor { get; } = anchor;
        public long Nodes { get; set; } = 1;
        public bool ExpectKey { get; set; } = true;
        public HashSet<string> Keys { get; } = new(StringComparer.Ordinal);
    }

    private static void Check(string text, string where)
    {
        var parser = new Parser(new StringReader(text));
        var stack = new Stack<Frame>();
        var anchors = new Dictionary<string, long>(StringComparer.Ordinal);
        long total = 0;

        void Add(long nodes, Mark at, string? key, bool complexKey)
        {
            total += nodes;
            if (total > Limits.MaxYamlNodes)
                throw new ConfigException($"{where}: line {at.Line}: the document expands to more than {Limits.MaxYamlNodes:N0} nodes (aliases repeat content; is this an alias bomb?)");
            if (stack.Count == 0) return;
            var parent = stack.Peek();
            parent.Nodes += nodes;
            if (!parent.Mapping) return;
            if (parent.ExpectKey)
            {
                if (complexKey) throw new ConfigException($"{where}: line {at.Line}: a mapping key must be a plain value, not a list, a mapping or an alias");
                if (!parent.Keys.Add(key!)) throw new ConfigException($"{where}: line {at.Line}: duplicate key {MessageText.Quote(key)}");
            }
            parent.ExpectKey = !parent.ExpectKey;
        }

        while (parser.MoveNext())
        {
            switch (parser.Current)
            {
                case Scalar s:
                    if (!s.Anchor.IsEmpty) anchors[s.Anchor.Value] = 1;
                    Add(1, s.Start, s.Value, complexKey: false);
                    break;
                case AnchorAlias a:
                    if (!anchors.TryGetValue(a.Value.Value, out long size))
                        throw new ConfigException($"{where}: line {a.Start.Line}: alias *{MessageText.Escape(a.Value.Value, 60)} has no anchor before it");
                    Add(size, a.Start, null, complexKey: true);
                    break;
                case MappingStart m:
                    Open(true, m.Anchor, m.Start);
                    break;
                case SequenceStart q:
                    Open(false, q.Anchor, q.Start);
                    break;
                case MappingEnd or SequenceEnd:
                    var done = stack.Pop();
                    if (done.Anchor is not null) anchors[done.Anchor] = done.Nodes;
                    // The collection's own node was counted when it opened; its children as they came.
                    if (stack.Count > 0)
                    {
                        var parent = stack.Peek();
                        parent.Nodes += done.Nodes;
                        if (parent.Mapping) parent.ExpectKey = !parent.ExpectKey;
                    }
                    break;
            }
        }

        void Open(bool mapping, AnchorName anchor, Mark at)
        {
            if (stack.Count > 0 && stack.Peek() is { Mapping: true, ExpectKey: true })
                throw new ConfigException($"{where}: line {at.Line}: a mapping key must be a plain value, not a list, a mapping or an alias");
            if (stack.Count >= Limits.MaxDocumentDepth)
                throw new ConfigException($"{where}: line {at.Line}: nested more than {Limits.MaxDocumentDepth} levels deep");
            total++;
            if (total > Limits.MaxYamlNodes)
                throw new ConfigException($"{where}: line {at.Line}: the document has more than {Limits.MaxYamlNodes:N0} nodes");
            stack.Push(new Frame(mapping, anchor.IsEmpty ? null : anchor.Value));
        }
    }
}
