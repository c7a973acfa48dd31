using System.Diagnostics;
using Consort.Formats.Gguf;

namespace Consort.Training;

/// <summary>A progress report from <see cref="TrainingLoop"/>.</summary>
/// <param name="Step">Steps done.</param>
/// <param name="TotalSteps">Steps planned.</param>
/// <param name="Loss">Training loss (moving average over recent steps).</param>
/// <param name="LearningRate">Learning rate of the last step.</param>
/// <param name="TokensPerSecond">Training tokens per second so far.</param>
/// <param name="EvalLoss">Held-out loss when this report follows an evaluation, else null.</param>
public sealed record TrainProgress(int Step, int TotalSteps, double Loss, float LearningRate, double TokensPerSecond, double? EvalLoss);

/// <summary>Settings for one training run.</summary>
public sealed record TrainingPlan
{
    /// <summary>Optimizer steps.</summary>
    public int Steps { get; init; } = 500;
    /// <summary>Evaluate the held-out loss every this many steps (0: only at the end).</summary>
    public int EvalEvery { get; init; } = 100;
    /// <summary>Held-out batches per evaluation.</summary>
    public int EvalBatches { get; init; } = 4;
    /// <summary>Write a checkpoint GGUF every this many steps (0: never).</summary>
    public int CheckpointEvery { get; init; }
    /// <summary>Checkpoint path (overwritten each time; the F32 model so training can resume from it exactly, or the LoRA adapter).</summary>
    public string? CheckpointPath { get; init; }
    /// <summary>Report progress every this many steps.</summary>
    public int ReportEvery { get; init; } = 50;
}

/// <summary>The outcome of a training run.</summary>
/// <param name="Steps">Steps taken.</param>
/// <param name="FinalLoss">Moving-average training loss at the end.</param>
/// <param name="EvalLoss">Held-out loss at the end.</param>
/// <param name="Seconds">Wall time.</param>
/// <param name="TokensPerSecond">Training throughput.</param>
public sealed record TrainResult(int Steps, double FinalLoss, double EvalLoss, double Seconds, double TokensPerSecond);

/// <summary>Runs steps with periodic held-out evaluation, progress reports and checkpoints.</summary>
public static class TrainingLoop
{
    /// <summary>Trains <paramref name="trainer"/> on batches from <paramref name="train"/>; evaluates on batches from <paramref name="eval"/>.</summary>
    public static TrainResult Run(TinyLlamaTrainer trainer, BatchSampler train, BatchSampler eval, TrainingPlan plan,
        Action<TrainProgress>? progress = null, CancellationToken ct = default)
    {
        var held = Enumerable.Range(0, Math.Max(1, plan.EvalBatches)).Select(_ => eval.Next()).ToList();
        double EvalNow() => held.Average(b => (double)trainer.EvalLoss(b));
        trainer.TotalSteps = plan.Steps;
        var sw = Stopwatch.StartNew();
        double avg = double.NaN, evalLoss = double.NaN;
        long tokens = 0;
        for (int s = 1; s <= plan.Steps; s++)
        {
            ct.ThrowIfCancellationRequested();
            var batch = train.Next();
            float loss = trainer.TrainStep(batch);
            if (!float.IsFinite(loss)) throw new ConsortException($"training diverged at step {s} (loss {loss}); lower the learning rate");
            tokens += batch.Inputs.Length;
            avg = double.IsNaN(avg) ? loss : 0.95 * avg + 0.05 * loss;
            bool doEval = s == plan.Steps || (plan.EvalEvery > 0 && s % plan.EvalEvery == 0);
            double? ev = null;
            if (doEval) ev = evalLoss = EvalNow();
            if (plan.CheckpointEvery > 0 && plan.CheckpointPath is not null && s % plan.CheckpointEvery == 0 && s < plan.Steps)
                trainer.SaveCheckpoint(plan.CheckpointPath, $"checkpoint-{s}");
            if (progress is not null && (doEval || s % Math.Max(1, plan.ReportEvery) == 0))
                progress(new(s, plan.Steps, avg, trainer.Optimizer.LearningRateAt(s - 1, plan.Steps), tokens / sw.Elapsed.TotalSeconds, ev));
        }
        if (plan.Steps == 0) evalLoss = EvalNow();
        return new(plan.Steps, avg, evalLoss, sw.Elapsed.TotalSeconds, tokens / Math.Max(1e-9, sw.Elapsed.TotalSeconds));
    }
}
