using System.Text.Json.Nodes;
using Consort.Methods;
using Microsoft.Extensions.AI;

namespace Consort.Evaluation;

/// <summary>
/// A dataset with its task type and options: builds the prompt for an item, scores outputs, and makes the
/// dev-split <see cref="FitExample"/>s that methods fit themselves on.
/// </summary>
public sealed class EvalTask
{
    private EvalTask(EvalDataset dataset, IEvalTaskType type, EvalTaskOptions options, int seed, string promptStyle)
    {
        Dataset = dataset; Type = type; Options = options; Seed = seed; PromptStyle = promptStyle;
    }

    /// <summary>Seed of the sampled item order (<see cref="SampleOrder"/>) behind limits and fitting subsets.</summary>
    public int Seed { get; }

    /// <summary>
    /// Where the prompt comes from: "config" (the task's own <c>prompt</c>), "likelihood", "completion" (the dataset's
    /// plain completion prompt, for base models) or "instruction" (the task type's default instruction).
    /// </summary>
    public string PromptStyle { get; }

    /// <summary>The dataset.</summary>
    public EvalDataset Dataset { get; }
    /// <summary>The task type.</summary>
    public IEvalTaskType Type { get; }
    /// <summary>The options.</summary>
    public EvalTaskOptions Options { get; }
    /// <summary>Task name (the dataset's name).</summary>
    public string Name => Dataset.Name;
    /// <summary>Generation budget (option or the type's default).</summary>
    public int MaxTokens => Options.MaxTokens ?? Type.DefaultMaxTokens;
    /// <summary>Default split of a run ("test" unless the task says otherwise).</summary>
    public string DefaultSplit => Options.Split ?? "test";

    /// <summary>Makes a task from a run config's "task" node (a dataset name or an object).</summary>
    /// <param name="config">The task config.</param>
    /// <param name="searchFolders">Dataset folders, searched in order for names.</param>
    /// <param name="seed">Seed of the sampled item order.</param>
    public static EvalTask Create(JsonNode? config, IEnumerable<string> searchFolders, int seed = 42) =>
        Create(EvalTaskOptions.Parse(config), searchFolders, seed);

    /// <summary>Makes a task from parsed options.</summary>
    /// <exception cref="ConsortException">Dataset problems; <see cref="ConfigException"/> for an unknown or unsupported type.</exception>
    public static EvalTask Create(EvalTaskOptions options, IEnumerable<string> searchFolders, int seed = 42)
    {
        var dataset = EvalDataset.Load(options.Dataset, searchFolders);
        var typeName = options.TaskType ?? dataset.TaskType
            ?? throw new ConfigException($"{dataset.FilePath}: the file has no \"task_type\"; give one in the task config");
        var type = EvalTaskTypes.Get(typeName, options.Metric);
        if (options.UsesLikelihood && type is not MultipleChoiceTask)
            throw new ConfigException($"task '{dataset.Name}': scoring '{options.Scoring}' works only for multiple_choice, not {type.Name}");
        string style = options.Prompt is not null ? "config" : options.UsesLikelihood ? "likelihood" : "instruction";
        return new EvalTask(dataset, type, options, seed, style);
    }

    /// <summary>
    /// The task as models of one kind should see it. For base models (no chat template) a task whose config gives no
    /// prompt uses the dataset's declared <see cref="EvalDataset.Completion"/> prompt (with its budget and stop
    /// sequences, where the config sets none) instead of the type's instruction, which base models cannot follow.
    /// Otherwise the task itself.
    /// </summary>
    public EvalTask ForModels(bool baseModels)
    {
        if (!baseModels || PromptStyle != "instruction" || Dataset.Completion is not { } c) return this;
        var options = Options with
        {
            Prompt = c.Prompt,
            MaxTokens = Options.MaxTokens ?? c.MaxTokens,
            Stop = Options.Stop.Count > 0 ? Options.Stop : c.Stop,
        };
        return new EvalTask(Dataset, Type, options, Seed, "completion");
    }

    /// <summary>The items of a split (the first <paramref name="limit"/> scorable ones), each checked for the fields the type needs.</summary>
    public IReadOnlyList<EvalItem> GetItems(string? split = null, int? limit = null) => GetItems(split, limit, out _);

    /// <summary>
    /// The items of a split: all of them in file order, or with a <paramref name="limit"/> (or the task's) a seeded
    /// random sample of that size, stratified by the item's group (<see cref="GroupOf"/>: domain, ...) when items have
    /// one (<see cref="SampleOrder"/>; a larger limit contains a smaller one). Items without a gold value
    /// (<see cref="IEvalTaskType.LacksGold"/>) are left out and their keys returned in <paramref name="skipped"/>.
    /// </summary>
    /// <exception cref="ConsortException">Missing split, or a selected item missing a field the type needs (file, id, field).</exception>
    public IReadOnlyList<EvalItem> GetItems(string? split, int? limit, out IReadOnlyList<string> skipped) =>
        Select(split, limit ?? Options.Limit, sample: (limit ?? Options.Limit) is not null, out skipped);

    private List<EvalItem> Select(string? split, int? max, bool sample, out IReadOnlyList<string> skipped)
    {
        if (max is < 0) throw new ConsortException($"limit must be at least 0, got {max}");
        var all = Dataset.GetSplit(split ?? DefaultSplit);
        var scorable = new List<EvalItem>(all.Count);
        var left = new List<string>();
        foreach (var item in all)
        {
            if (Type.LacksGold(item)) left.Add(item.Key);
            else scorable.Add(item);
        }
        skipped = left;
        IReadOnlyList<EvalItem> ordered = sample ? SampleOrder.Stratified(scorable, GroupOf, Seed) : scorable;
        var items = max is { } m && m < ordered.Count ? ordered.Take(m).ToList() : ordered.ToList();
        foreach (var item in items) Type.Validate(item);
        return items;
    }

    /// <summary>The user prompt text for an item.</summary>
    public string PromptText(EvalItem item) => PromptTemplate.Render(Template, item);

    /// <summary>The prompt template in use (the config's, the dataset's completion prompt, or the type's default).</summary>
    public string Template => Options.Prompt ?? DefaultTemplate;

    /// <summary>The parts of a run definition this task determines: "task" (dataset digest, type, scoring, generation
    /// settings) and "prompts" (style, template, system prompt).</summary>
    public IEnumerable<KeyValuePair<string, JsonNode?>> DefinitionParts()
    {
        yield return KeyValuePair.Create("task", (JsonNode?)new JsonObject
        {
            ["dataset"] = Dataset.Name,
            ["sha256"] = Dataset.Sha256,
            ["task_type"] = Type.Name,
            ["scoring"] = Options.Scoring,
            ["metric"] = Options.Metric,
            ["group_by"] = Options.GroupBy,
            ["max_tokens"] = MaxTokens,
            ["stop"] = new JsonArray(Options.Stop.Select(x => (JsonNode?)JsonValue.Create(x)).ToArray()),
            ["temperature"] = Options.Temperature ?? 0f,
        });
        yield return KeyValuePair.Create("prompts", (JsonNode?)new JsonObject
        {
            ["style"] = PromptStyle,
            ["template"] = Options.UsesLikelihood ? null : Template,
            ["likelihood_template"] = Options.UsesLikelihood ? Template : null,
            ["system"] = Options.System,
        });
    }

    private string DefaultTemplate => Options.Scoring switch
    {
        "likelihood" => "Question: {question}\nAnswer:",
        "likelihood_letter" => "{question}\n{choices}\nAnswer:",
        _ => Type.DefaultPrompt,
    };

    /// <summary>
    /// The text a likelihood scorer continues: the system prompt (if any) and the user prompt, plainly joined
    /// (base models have no chat template).
    /// </summary>
    public string LikelihoodPrompt(EvalItem item) =>
        Options.System is { Length: > 0 } s ? s + "\n\n" + PromptText(item) : PromptText(item);

    /// <summary>Chat messages for an item: optional system message, then the prompt.</summary>
    public IReadOnlyList<ChatMessage> BuildMessages(EvalItem item)
    {
        var messages = new List<ChatMessage>(2);
        if (Options.System is { Length: > 0 } s) messages.Add(new ChatMessage(ChatRole.System, s));
        messages.Add(new ChatMessage(ChatRole.User, PromptText(item)));
        return messages;
    }

    /// <summary>Chat options: max tokens, stop sequences, temperature (0 unless set).</summary>
    public ChatOptions BuildChatOptions() => new()
    {
        MaxOutputTokens = MaxTokens,
        StopSequences = Options.Stop.Count > 0 ? Options.Stop.ToList() : null,
        Temperature = Options.Temperature ?? 0f,
    };

    private static readonly string[] GroupFields = ["domain", "country", "answer_type"];

    /// <summary>The item's group for per-group scores (the "group_by" field, else domain/country/answer_type); null when none.</summary>
    public string? GroupOf(EvalItem item)
    {
        if (Options.GroupBy is { } field) return item.GetString(field);
        foreach (var f in GroupFields)
        {
            if (item.GetString(f) is { } v) return v;
        }
        return null;
    }

    /// <summary>The task's answer extractor for one item (voting and ranking compare answers this way).</summary>
    public AnswerExtractor AnswersFor(EvalItem item) => new(output => Type.NormalizeAnswer(output, item));

    /// <summary>The task's answer extractor without an item (server calls, fitting defaults).</summary>
    public AnswerExtractor Answers => new(output => Type.NormalizeAnswer(output, null));

    /// <summary>Scores an output for an item.</summary>
    public ItemScore Score(EvalItem item, string output) => Type.Score(item, output);

    /// <summary>Dev examples (or another split's) for methods that fit themselves.</summary>
    public IFitData BuildFitData(string split = "dev", int? limit = null)
    {
        // The task's own "limit" is for the evaluated split; fitting takes the whole split unless told otherwise, in the
        // sampled order, so that a method taking its first N examples (a calibration subset) gets a fair sample.
        var options = BuildChatOptions();
        var examples = Select(split, limit, sample: true, out _).Select(item => new FitExample(
            item.Key,
            BuildMessages(item),
            Type.Gold(item),
            output => Type.Score(item, output).Score,
            output => Type.NormalizeAnswer(output, item))
        {
            // Fit on outputs generated the way the run generates them.
            Options = AnswersFor(item).AttachTo(options),
            Group = GroupOf(item),
        }).ToList();
        return new FitData(examples);
    }

    private sealed class FitData(IReadOnlyList<FitExample> examples) : IFitData
    {
        public IReadOnlyList<FitExample> Examples { get; } = examples;
    }
}
