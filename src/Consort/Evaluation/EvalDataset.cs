using System.Text.Json;
using System.Text.Json.Nodes;

namespace Consort.Evaluation;

/// <summary>
/// A dataset file in the shared layout: <c>{"dataset"|"name": ..., "task_type": ..., "dev": [...], "test": [...]}</c>.
/// </summary>
public sealed class EvalDataset
{
    private readonly Dictionary<string, IReadOnlyList<EvalItem>> _splits;

    private EvalDataset(string name, string? taskType, string path, Dictionary<string, IReadOnlyList<EvalItem>> splits,
        CompletionPrompt? completion, string sha256)
    {
        Name = name; TaskType = taskType; FilePath = path; _splits = splits; Completion = completion; Sha256 = sha256;
    }

    /// <summary>
    /// The plain completion prompt the file declares for base models (<c>"completion": {"prompt", "max_tokens", "stop"}</c>),
    /// used instead of the task type's instruction when a run names the dataset bare and its models have no chat template.
    /// </summary>
    public CompletionPrompt? Completion { get; }
    /// <summary>Hex SHA-256 of the file's bytes (part of a run's definition).</summary>
    public string Sha256 { get; }

    /// <summary>Dataset name ("dataset" or "name" field, else the file name).</summary>
    public string Name { get; }
    /// <summary>The file's task type, when it states one.</summary>
    public string? TaskType { get; }
    /// <summary>Full path of the file.</summary>
    public string FilePath { get; }
    /// <summary>Split names present (e.g. dev, test).</summary>
    public IReadOnlyCollection<string> SplitNames => _splits.Keys;

    /// <summary>
    /// Loads a dataset by file path (absolute or relative to the current folder) or by name
    /// ("gsm8k" or "gsm8k.json") looked up in <paramref name="searchFolders"/> in order.
    /// </summary>
    /// <exception cref="ConsortException">File not found (lists folders and available names), malformed JSON
    /// (file and position), or a layout problem.</exception>
    public static EvalDataset Load(string nameOrPath, IEnumerable<string> searchFolders)
    {
        if (string.IsNullOrWhiteSpace(nameOrPath)) throw new ConfigException("task: no dataset given");
        var path = Resolve(nameOrPath, searchFolders.Where(f => !string.IsNullOrWhiteSpace(f)).ToList());
        return LoadFile(path);
    }

    /// <summary>Environment variable with extra dataset folders (separated by the platform's path separator).</summary>
    public const string FoldersVariable = "CONSORT_DATASETS";

    /// <summary>
    /// The usual search folders, in order: the config file's folder (when given), the folders in
    /// <c>CONSORT_DATASETS</c>, then <c>../shared/datasets</c> relative to <paramref name="repoRoot"/>.
    /// </summary>
    public static IReadOnlyList<string> DefaultSearchFolders(string repoRoot, string? configFolder = null)
    {
        var folders = new List<string>();
        if (!string.IsNullOrWhiteSpace(configFolder)) folders.Add(Path.GetFullPath(configFolder));
        var env = Environment.GetEnvironmentVariable(FoldersVariable);
        if (!string.IsNullOrWhiteSpace(env))
            folders.AddRange(env.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(Path.GetFullPath));
        folders.Add(Path.GetFullPath(Path.Combine(repoRoot, "..", "shared", "datasets")));
        return folders.Distinct().ToList();
    }

    /// <summary>Names (file stems) of the datasets in <paramref name="folders"/>, sorted.</summary>
    public static IReadOnlyList<string> AvailableNames(IEnumerable<string> folders) =>
        folders.Where(Directory.Exists)
            .SelectMany(f => Directory.EnumerateFiles(f, "*.json"))
            .Select(Path.GetFileNameWithoutExtension)
            .Select(n => n!)
            .Distinct(StringComparer.OrdinalIgnoreCase)
            .Order(StringComparer.OrdinalIgnoreCase)
            .ToList();

    private static string Resolve(string nameOrPath, IReadOnlyList<string> folders)
    {
        if (File.Exists(nameOrPath)) return Path.GetFullPath(nameOrPath);
        bool looksLikePath = Path.IsPathRooted(nameOrPath) || nameOrPath.Contains('/') || nameOrPath.Contains('\\');
        if (!looksLikePath)
        {
            var file = nameOrPath.EndsWith(".json", StringComparison.OrdinalIgnoreCase) ? nameOrPath : nameOrPath + ".json";
            foreach (var folder in folders)
            {
                var candidate = Path.Combine(folder, file);
                if (File.Exists(candidate)) return Path.GetFullPath(candidate);
            }
        }
        var searched = folders.Count == 0
            ? "(no dataset folders)"
            : string.Join(", ", folders.Select(f => Directory.Exists(f) ? Path.GetFullPath(f) : Path.GetFullPath(f) + " (missing)"));
        var names = AvailableNames(folders);
        throw new ConsortException(looksLikePath
            ? $"dataset file not found: {MessageText.Escape(nameOrPath)}"
            : $"dataset {MessageText.Quote(nameOrPath)} not found; searched: {searched}; available: {(names.Count == 0 ? "(none)" : string.Join(", ", names))}");
    }

    private static EvalDataset LoadFile(string path)
    {
        // Size, UTF-8, depth and duplicate keys are bounded while parsing (errors name the file and position).
        var bytes = Consort.Formats.SafeJson.ReadFile(path, Limits.MaxDatasetBytes, "a dataset", Consort.Formats.SafeJson.Kind.Data);
        string sha256 = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes));
        JsonNode? root = Consort.Formats.SafeJson.ParseNode(bytes, path, Consort.Formats.SafeJson.Kind.Data);
        if (root is not JsonObject obj)
            throw new ConsortException($"{path}: expected a JSON object with \"dev\"/\"test\" arrays, found {root?.GetValueKind().ToString() ?? "null"}");

        string name = EvalItem.TextOf(obj["dataset"]) ?? EvalItem.TextOf(obj["name"]) ?? Path.GetFileNameWithoutExtension(path);
        string? taskType = EvalItem.TextOf(obj["task_type"]);
        var splits = new Dictionary<string, IReadOnlyList<EvalItem>>(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in obj)
        {
            if (value is not JsonArray arr) continue;
            splits[key] = ReadSplit(path, key, arr);
        }
        if (splits.Count == 0) throw new ConsortException($"{path}: no splits (arrays such as \"dev\" and \"test\") found");
        return new EvalDataset(name, taskType, path, splits, CompletionPrompt.Parse(obj["completion"], path), sha256);
    }

    private static IReadOnlyList<EvalItem> ReadSplit(string path, string split, JsonArray arr)
    {
        var items = new List<EvalItem>(arr.Count);
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < arr.Count; i++)
        {
            if (arr[i] is not JsonObject o)
                throw new ConsortException($"{path}: split {MessageText.Quote(split)} entry {i} is not an object");
            string id = EvalItem.TextOf(o["id"]) ?? i.ToString(System.Globalization.CultureInfo.InvariantCulture);
            // Some files (math, blend) repeat ids for different items: keep every item, with a stable suffix.
            int n = seen.TryGetValue(id, out var c) ? c + 1 : 1;
            seen[id] = n;
            items.Add(new EvalItem(o, n == 1 ? id : $"{id}#{n}", i, path));
        }
        return items;
    }

    /// <summary>
    /// The items of <paramref name="split"/>; with <paramref name="limit"/>, the first N (deterministic).
    /// </summary>
    /// <exception cref="ConsortException">The split does not exist (names the ones that do).</exception>
    public IReadOnlyList<EvalItem> GetSplit(string split, int? limit = null)
    {
        if (!_splits.TryGetValue(split, out var items))
            throw new ConsortException($"{FilePath}: no split {MessageText.Quote(split)}; available: {Limits.ForMessage(string.Join(", ", _splits.Keys))}");
        if (limit is < 0) throw new ConsortException($"limit must be at least 0, got {limit}");
        return limit is { } n && n < items.Count ? items.Take(n).ToList() : items;
    }
}
