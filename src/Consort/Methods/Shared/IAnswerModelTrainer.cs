namespace Consort.Methods;

/// <summary>What to fine-tune: a local base model on prompt/answer pairs (loss on the answers only).</summary>
/// <param name="BasePath">The base GGUF.</param>
/// <param name="Pairs">Training pairs; the model learns to write Answer after Prompt.</param>
/// <param name="OutputPath">Where the fine-tuned GGUF goes.</param>
/// <param name="Steps">Optimizer steps.</param>
/// <param name="LearningRate">Peak learning rate.</param>
/// <param name="Seed">Seed of the batch sampling.</param>
public sealed record AnswerTrainingRequest(string BasePath, IReadOnlyList<(string Prompt, string Answer)> Pairs, string OutputPath, int Steps, double LearningRate, int Seed);

/// <summary>How a fine-tune went.</summary>
/// <param name="Steps">Steps run.</param>
/// <param name="FinalLoss">Training loss at the end.</param>
/// <param name="Seconds">Wall time.</param>
public sealed record AnswerTrainingResult(int Steps, double FinalLoss, double Seconds);

/// <summary>
/// Fine-tunes a small local model to write answers (what <c>consort train --from BASE --pairs</c> does), for methods that
/// learn a model (trained_router's <c>lm</c> router). The host registers one; methods ask <c>context.GetService&lt;IAnswerModelTrainer&gt;()</c>.
/// </summary>
public interface IAnswerModelTrainer
{
    /// <summary>Trains and writes <see cref="AnswerTrainingRequest.OutputPath"/>.</summary>
    /// <exception cref="ConsortException">The base model cannot be trained here (architecture, tokenizer, a pair longer than its context).</exception>
    Task<AnswerTrainingResult> TrainAsync(AnswerTrainingRequest request, CancellationToken cancellationToken);
}
