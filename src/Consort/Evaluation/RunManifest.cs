using System.Text.Json;
using System.Text.Json.Nodes;

namespace Consort.Evaluation;

/// <summary>
/// run.json: what a results folder holds (model, method, task, split, member models, limit, config echo).
/// A rerun into the same folder resumes only when model, method, task and split and members agree.
/// </summary>
public sealed record RunManifest
{
    /// <summary>File name inside the output folder.</summary>
    public const string FileName = "run.json";

    /// <summary>Model (or collaboration) name.</summary>
    public required string Model { get; init; }
    /// <summary>Method name ("single" for one model).</summary>
    public required string Method { get; init; }
    /// <summary>Task (dataset) name.</summary>
    public required string Task { get; init; }
    /// <summary>Task type.</summary>
    public required string TaskType { get; init; }
    /// <summary>Scoring mode.</summary>
    public required string Scoring { get; init; }
    /// <summary>Dataset file.</summary>
    public required string Dataset { get; init; }
    /// <summary>Split.</summary>
    public required string Split { get; init; }
    /// <summary>Item limit, if any.</summary>
    public int? Limit { get; init; }
    /// <summary>Member model names (the model itself for a single model).</summary>
    public required IReadOnlyList<string> Models { get; init; }
    /// <summary>When the folder was first used.</summary>
    public DateTimeOffset Created { get; init; }
    /// <summary>The run config, echoed.</summary>
    public JsonNode? Config { get; init; }
    /// <summary>Everything that determines the results (<see cref="RunDefinition.ToJson"/>); null for runs made in code without one.</summary>
    public JsonObject? Definition { get; init; }
    /// <summary>The shard ("i/n") this folder holds, or null for a whole run.</summary>
    public string? Shard { get; init; }
    /// <summary>Items selected before sharding (the whole run's item count).</summary>
    public int? Selected { get; init; }
    /// <summary>Where the prompt came from (<see cref="EvalTask.PromptStyle"/>).</summary>
    public string? PromptStyle { get; init; }

    /// <summary>Why <paramref name="other"/> (this run) cannot resume into a folder of this manifest; null when it can.</summary>
    public string? Mismatch(RunManifest other)
    {
        var diffs = new List<string>();
        if (Shard != other.Shard) diffs.Add($"shard {Shard ?? "(none)"} vs {other.Shard ?? "(none)"}");
        if (RunDefinition.FromJson(Definition) is { } mine && RunDefinition.FromJson(other.Definition) is { } theirs)
        {
            diffs.AddRange(mine.Changes(theirs));
            return diffs.Count == 0 ? null : string.Join("; ", diffs);
        }
        if (Model != other.Model) diffs.Add($"model '{Model}' vs '{other.Model}'");
        if (Method != other.Method) diffs.Add($"method '{Method}' vs '{other.Method}'");
        if (Task != other.Task) diffs.Add($"task '{Task}' vs '{other.Task}'");
        if (Scoring != other.Scoring) diffs.Add($"scoring '{Scoring}' vs '{other.Scoring}'");
        if (!string.Equals(Split, other.Split, StringComparison.OrdinalIgnoreCase)) diffs.Add($"split '{Split}' vs '{other.Split}'");
        if (!Models.SequenceEqual(other.Models)) diffs.Add($"models [{string.Join(", ", Models)}] vs [{string.Join(", ", other.Models)}]");
        return diffs.Count == 0 ? null : string.Join("; ", diffs);
    }

    /// <summary>Reads run.json from <paramref name="folder"/>; null when absent.</summary>
    /// <exception cref="ConsortException">Unreadable file.</exception>
    public static RunManifest? Read(string folder)
    {
        var path = Path.Combine(folder, FileName);
        if (!File.Exists(path)) return null;
        try
        {
            return JsonSerializer.Deserialize<RunManifest>(File.ReadAllText(path), EvalJson.Options)
                   ?? throw new ConsortException($"{path}: empty");
        }
        catch (JsonException e)
        {
            throw new ConsortException($"{path}: not a valid run manifest ({e.Message}); use another --out", e);
        }
    }

    /// <summary>Writes run.json into <paramref name="folder"/> (via a temporary file, so it is never half-written).</summary>
    public void Write(string folder)
    {
        var path = Path.Combine(folder, FileName);
        var tmp = path + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(this, EvalJson.Indented));
        File.Move(tmp, path, overwrite: true);
    }
}
