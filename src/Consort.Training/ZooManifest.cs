using System.Text.Json;
using System.Text.Json.Serialization;

namespace Consort.Training;

/// <summary>Training settings of one zoo model, as recorded in the manifest.</summary>
public sealed record ZooTraining
{
    /// <summary>Model this one was fine-tuned from (null: random init).</summary>
    [JsonPropertyName("parent")] public string? Parent { get; init; }
    /// <summary>Random-init seed (base only).</summary>
    [JsonPropertyName("init_seed")] public int? InitSeed { get; init; }
    /// <summary>Seed of the batch sampler.</summary>
    [JsonPropertyName("sampler_seed")] public int SamplerSeed { get; init; }
    /// <summary>Training data mixture (source to weight).</summary>
    [JsonPropertyName("mixture")] public Dictionary<string, double> Mixture { get; init; } = new();
    /// <summary>Loss only on answers of prompt/answer pairs.</summary>
    [JsonPropertyName("answer_only_loss")] public bool AnswerOnly { get; init; }
    /// <summary>Optimizer steps.</summary>
    [JsonPropertyName("steps")] public int Steps { get; init; }
    /// <summary>Windows per step.</summary>
    [JsonPropertyName("batch")] public int Batch { get; init; }
    /// <summary>Tokens per window.</summary>
    [JsonPropertyName("seq_len")] public int SeqLen { get; init; }
    /// <summary>Peak learning rate.</summary>
    [JsonPropertyName("lr")] public float LearningRate { get; init; }
    /// <summary>Warm-up steps.</summary>
    [JsonPropertyName("warmup_steps")] public int WarmupSteps { get; init; }
    /// <summary>Cosine floor as a fraction of the peak.</summary>
    [JsonPropertyName("min_lr_ratio")] public float MinLrRatio { get; init; }
    /// <summary>AdamW weight decay.</summary>
    [JsonPropertyName("weight_decay")] public float WeightDecay { get; init; }
    /// <summary>Final training loss (moving average).</summary>
    [JsonPropertyName("final_loss")] public double FinalLoss { get; init; }
    /// <summary>Final held-out loss.</summary>
    [JsonPropertyName("eval_loss")] public double EvalLoss { get; init; }
    /// <summary>Wall time of this stage.</summary>
    [JsonPropertyName("seconds")] public double Seconds { get; init; }
    /// <summary>Training tokens per second.</summary>
    [JsonPropertyName("tokens_per_second")] public double TokensPerSecond { get; init; }
}

/// <summary>One model of the zoo.</summary>
public sealed record ZooModel
{
    /// <summary>Name used in <c>zoo:NAME</c>.</summary>
    [JsonPropertyName("name")] public required string Name { get; init; }
    /// <summary>File name inside the zoo folder.</summary>
    [JsonPropertyName("file")] public required string File { get; init; }
    /// <summary>"base" or "expert".</summary>
    [JsonPropertyName("role")] public required string Role { get; init; }
    /// <summary>The skill an expert specializes in (null for the base).</summary>
    [JsonPropertyName("skill")] public string? Skill { get; init; }
    /// <summary>Tensor type of the matrices (F16 or F32).</summary>
    [JsonPropertyName("tensor_type")] public required string TensorType { get; init; }
    /// <summary>File size in bytes.</summary>
    [JsonPropertyName("bytes")] public long Bytes { get; init; }
    /// <summary>SHA-256 of the file, lower-case hex.</summary>
    [JsonPropertyName("sha256")] public required string Sha256 { get; init; }
    /// <summary>How it was trained.</summary>
    [JsonPropertyName("training")] public required ZooTraining Training { get; init; }
    /// <summary>A second training stage continued from the first-stage file (null when none).</summary>
    [JsonPropertyName("second_stage")] public ZooTraining? ExtraTraining { get; init; }
    /// <summary>Greedy exact-match accuracy through llama.cpp on each skill's test split.</summary>
    [JsonPropertyName("scores")] public Dictionary<string, double> Scores { get; init; } = new();
}

/// <summary>One generated dataset of the zoo.</summary>
public sealed record ZooDataset
{
    /// <summary>Name used in <c>zoo:NAME</c> dataset references.</summary>
    [JsonPropertyName("name")] public required string Name { get; init; }
    /// <summary>Path relative to the zoo folder.</summary>
    [JsonPropertyName("file")] public required string File { get; init; }
    /// <summary>Dev items.</summary>
    [JsonPropertyName("dev")] public int Dev { get; init; }
    /// <summary>Test items.</summary>
    [JsonPropertyName("test")] public int Test { get; init; }
    /// <summary>SHA-256 of the file.</summary>
    [JsonPropertyName("sha256")] public required string Sha256 { get; init; }
}

/// <summary>The zoo's manifest (<c>zoo/manifest.json</c>).</summary>
public sealed record ZooManifest
{
    /// <summary>Manifest format version.</summary>
    [JsonPropertyName("format")] public int Format { get; init; } = 1;
    /// <summary>When the build finished (UTC, ISO 8601).</summary>
    [JsonPropertyName("built_utc")] public string BuiltUtc { get; init; } = "";
    /// <summary>Whole build wall time in seconds.</summary>
    [JsonPropertyName("build_seconds")] public double BuildSeconds { get; init; }
    /// <summary>Training threads and the machine's core count.</summary>
    [JsonPropertyName("machine")] public string Machine { get; init; } = "";
    /// <summary>Free-text notes (e.g. CPU contention during the build).</summary>
    [JsonPropertyName("notes")] public string? Notes { get; init; }
    /// <summary>Seed of the skill data (world, question splits).</summary>
    [JsonPropertyName("data_seed")] public int DataSeed { get; init; }
    /// <summary>Shared architecture.</summary>
    [JsonPropertyName("architecture")] public required TinyLlamaConfig Architecture { get; init; }
    /// <summary>Parameters per model.</summary>
    [JsonPropertyName("parameters")] public long Parameters { get; init; }
    /// <summary>Tokenizer description.</summary>
    [JsonPropertyName("tokenizer")] public string Tokenizer { get; init; } = "byte-level: 256 byte tokens (GPT-2 byte-to-unicode) + <s>, </s>";
    /// <summary>Models, base first.</summary>
    [JsonPropertyName("models")] public List<ZooModel> Models { get; init; } = [];
    /// <summary>LoRA adapters trained from a zoo model (<c>zoo:NAME</c> resolves to the base plus the adapter).</summary>
    [JsonPropertyName("adapters")] public List<ZooAdapter> Adapters { get; init; } = [];
    /// <summary>Generated datasets.</summary>
    [JsonPropertyName("datasets")] public List<ZooDataset> Datasets { get; init; } = [];

    internal static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>Reads a manifest file.</summary>
    public static ZooManifest Load(string path)
    {
        if (!System.IO.File.Exists(path)) throw new ConsortException($"zoo manifest not found: {path}");
        try
        {
            return JsonSerializer.Deserialize<ZooManifest>(System.IO.File.ReadAllText(path), Json) ?? throw new ConsortException($"{path}: empty manifest");
        }
        catch (JsonException e)
        {
            throw new ConsortException($"{path}: invalid zoo manifest ({e.Message})", e);
        }
    }

    /// <summary>Writes the manifest.</summary>
    public void Save(string path) => System.IO.File.WriteAllText(path, JsonSerializer.Serialize(this, Json) + "\n");
}
