namespace Consort.Evaluation;

/// <summary>The task types known by name (the <c>task_type</c> of a dataset file or a task config).</summary>
public static class EvalTaskTypes
{
    /// <summary>Types that can be scored here.</summary>
    public static IReadOnlyList<string> Supported { get; } = ["multiple_choice", "exact_match", "f1_match"];

    /// <summary>Types that exist in the dataset layout but need something this offline harness lacks.</summary>
    public static IReadOnlyDictionary<string, string> Unsupported { get; } = new Dictionary<string, string>
    {
        ["coding"] = "it needs a sandbox to run the generated code against the tests",
        ["reward_model"] = "it needs a judge model to score free-form answers",
    };

    /// <summary>Makes the task type <paramref name="name"/>.</summary>
    /// <param name="name">Type name.</param>
    /// <param name="metric">Main metric where the type has a choice (f1_match: f1, contains, exact).</param>
    /// <exception cref="ConfigException">Unknown or unsupported type.</exception>
    public static IEvalTaskType Get(string name, string? metric = null)
    {
        switch (name)
        {
            case "multiple_choice": return new MultipleChoiceTask();
            case "exact_match": return new ExactMatchTask();
            case "f1_match": return new F1MatchTask(metric ?? "f1");
        }
        if (Unsupported.TryGetValue(name, out var why))
            throw new ConfigException($"task type '{name}' is not supported offline: {why}; supported: {string.Join(", ", Supported)}");
        throw new ConfigException($"unknown task type '{name}'; supported: {string.Join(", ", Supported)}");
    }
}
