namespace Consort.Methods;

/// <summary>A prompt and the completion a fine-tuned model should write after it.</summary>
/// <param name="Prompt">Prompt text.</param>
/// <param name="Completion">What the model should answer.</param>
public sealed record TrainingPair(string Prompt, string Completion);

/// <summary>How a fine-tune runs.</summary>
/// <param name="Steps">Optimizer steps.</param>
/// <param name="LearningRate">Peak learning rate.</param>
/// <param name="Batch">Windows per step.</param>
/// <param name="SequenceLength">Tokens per window.</param>
/// <param name="Seed">Seed of the batch sampler.</param>
public sealed record FineTuneSettings(int Steps, double LearningRate, int Batch, int SequenceLength, int Seed);

/// <summary>What a fine-tune produced.</summary>
/// <param name="Path">The fine-tuned GGUF.</param>
/// <param name="FinalLoss">Training loss at the end.</param>
/// <param name="Seconds">Wall time.</param>
public sealed record FineTuneResult(string Path, double FinalLoss, double Seconds);

/// <summary>
/// Fine-tunes a small local model on prompt/completion pairs (loss on the completion only): the trainer
/// <c>consort train</c> uses, offered by the host in <see cref="MethodContext.Services"/> because methods know no backend.
/// </summary>
public interface IModelTrainer
{
    /// <summary>Why <paramref name="baseModel"/> cannot be fine-tuned here (no such file, an architecture the trainer does not
    /// build), or null when it can. Cheap: reads the file's header only.</summary>
    string? Check(string baseModel, string baseDirectory);

    /// <summary>Fine-tunes <paramref name="baseModel"/> on <paramref name="pairs"/> and writes the model to <paramref name="outputPath"/>.</summary>
    Task<FineTuneResult> FineTuneAsync(string baseModel, string baseDirectory, IReadOnlyList<TrainingPair> pairs, FineTuneSettings settings,
        string outputPath, Action<string>? log, CancellationToken cancellationToken);
}
