using System.Text;

namespace Consort.Evaluation;

/// <summary>
/// Evaluates several models (e.g. each member alone and the collaboration) on the same items, each into
/// OUT/&lt;model-name&gt;/, and returns their summaries for one comparison table.
/// </summary>
public static class SideBySideRunner
{
    /// <summary>Runs every model in turn (each with the run's concurrency) on the same split and limit.</summary>
    /// <param name="models">The models, in table order; names must differ.</param>
    /// <param name="task">The task.</param>
    /// <param name="options">Options; <see cref="EvalRunOptions.OutputDirectory"/> is the parent folder.</param>
    /// <param name="progress">Makes a progress sink per model (or null).</param>
    /// <param name="cancellationToken">Stops the runs (each folder stays resumable).</param>
    public static async Task<IReadOnlyList<EvalSummary>> RunAsync(IReadOnlyList<ConsortModel> models, EvalTask task,
        EvalRunOptions options, Func<ConsortModel, IProgress<EvalProgress>?>? progress = null, CancellationToken cancellationToken = default)
    {
        if (models.Count == 0) throw new ConfigException("side-by-side evaluation needs at least one model");
        var folders = FolderNames(models);
        var summaries = new List<EvalSummary>(models.Count);
        for (int i = 0; i < models.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var sub = options with
            {
                OutputDirectory = Path.Combine(options.OutputDirectory, folders[i]),
                Method = models[i].Members.Count > 0 || models[i].Method is not null ? options.Method : null,
            };
            summaries.Add(await EvalRunner.RunAsync(models[i], task, sub, progress?.Invoke(models[i]), cancellationToken).ConfigureAwait(false));
        }
        return summaries;
    }

    /// <summary>A folder name per model: the name with unsafe characters replaced; repeats get "-2", "-3".</summary>
    public static IReadOnlyList<string> FolderNames(IReadOnlyList<ConsortModel> models)
    {
        var used = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var names = new List<string>(models.Count);
        foreach (var m in models)
        {
            var baseName = Safe(m.Name);
            var name = baseName;
            for (int n = 2; !used.Add(name); n++) name = $"{baseName}-{n}";
            names.Add(name);
        }
        return names;
    }

    private static string Safe(string name)
    {
        var invalid = Path.GetInvalidFileNameChars();
        var sb = new StringBuilder(name.Length);
        foreach (var ch in name) sb.Append(invalid.Contains(ch) || ch is '/' or '\\' or ':' or ' ' ? '_' : ch);
        var s = sb.ToString().Trim('.');
        return s.Length == 0 ? "model" : s;
    }
}
