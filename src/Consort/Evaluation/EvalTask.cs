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
    private EvalTask(EvalDataset dataset, IEvalTaskType type, EvalTaskOptions options)
    {
        Dataset = dataset; Type = type; Options = options;
    }

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
    public static EvalTask Create(JsonNode? config, IEnumerable<string> searchFolders) =>
        Create(EvalTaskOptions.Parse(config), searchFolders);

    /// <summary>Makes a task from parsed options.</summary>
    /// <exception cref="ConsortException">Dataset problems; <see cref="ConfigException"/> for an unknown or unsupported type.</exception>
    public static EvalTask Create(EvalTaskOptions options, IEnumerable<string> searchFolders)
    {
        var dataset = EvalDataset.Load(options.Dataset, searchFolders);
        var typeName = options.TaskType ?? dataset.TaskType
            ?? throw new ConfigException($"{dataset.FilePath}: the file has no \"task_type\"; give one in the task config");
        var type = EvalTaskTypes.Get(typeName, options.Metric);
        if (options.UsesLikelihood && type is not MultipleChoiceTask)
            throw new ConfigException($"task '{dataset.Name}': scoring '{options.Scoring}' works only for multiple_choice, not {type.Name}");
        return new EvalTask(dataset, type, options);
    }

    /// <summary>The items of a split (the first <paramref name="limit"/> scorable ones), each checked for the fields the type needs.</summary>
    public IReadOnlyList<EvalItem> GetItems(string? split = null, int? limit = null) => GetItems(split, limit, out _);

    /// <summary>
    /// The items of a split, first <paramref name="limit"/> in file order; items without a gold value
    /// (<see cref="IEvalTaskType.LacksGold"/>) are left out and their keys returned in <paramref name="skipped"/>.
    /// </summary>
    /// <exception cref="ConsortException">Missing split, or an item missing a field the type needs (file, id, field).</exception>
    public IReadOnlyList<EvalItem> GetItems(string? split, int? limit, out IReadOnlyList<string> skipped)
    {
        var all = Dataset.GetSplit(split ?? DefaultSplit);
        var max = limit ?? Options.Limit;
        if (max is < 0) throw new ConsortException($"limit must be at least 0, got {max}");
        var items = new List<EvalItem>();
        var left = new List<string>();
        foreach (var item in all)
        {
            if (max is { } m && items.Count >= m) break;
            if (Type.LacksGold(item)) { left.Add(item.Key); continue; }
            Type.Validate(item);
            items.Add(item);
        }
        skipped = left;
        return items;
    }

    /// <summary>The user prompt text for an item.</summary>
    public string PromptText(EvalItem item) => PromptTemplate.Render(Options.Prompt ?? DefaultTemplate, item);

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
        // The task's own "limit" is for the evaluated split; fitting takes the whole split unless told otherwise.
        var options = BuildChatOptions();
        var examples = GetItems(split, limit ?? int.MaxValue, out _).Select(item => new FitExample(
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
