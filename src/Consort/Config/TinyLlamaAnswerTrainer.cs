using Consort.Formats.Gguf;
using Consort.Methods;
using Consort.Training;

namespace Consort.Config;

/// <summary>
/// <see cref="IAnswerModelTrainer"/> over Consort.Training (the trainer behind <c>consort train</c>): full fine-tuning of a
/// byte-level tiny LLaMA (the zoo's models) with answer-only loss, AdamW with warm-up and cosine decay, on the CPU.
/// </summary>
public sealed class TinyLlamaAnswerTrainer : IAnswerModelTrainer
{
    /// <inheritdoc />
    public Task<AnswerTrainingResult> TrainAsync(AnswerTrainingRequest request, CancellationToken cancellationToken) => Task.Run(() =>
    {
        if (request.Pairs.Count == 0) throw new ConsortException("no training pairs");
        if (!File.Exists(request.BasePath)) throw new ConsortException($"{request.BasePath}: file not found");
        TinyLlamaConfig cfg;
        using (var g = GgufFile.Open(request.BasePath)) cfg = TinyLlamaConfig.FromGguf(g);
        var examples = request.Pairs.Select(p => TrainingExample.FromPair(p.Prompt, p.Answer, answerOnly: true)).ToArray();
        int longest = examples.Max(e => e.Tokens.Length);
        if (longest > cfg.Context) throw new ConsortException($"a training pair is {longest} tokens, more than the base model's context of {cfg.Context}");
        int seqLen = Math.Min(cfg.Context, Math.Max(32, (longest + 15) / 16 * 16));
        const int batch = 8;
        using var trainer = new TinyLlamaTrainer(cfg, batch, seqLen, Math.Max(1, Environment.ProcessorCount))
        {
            Optimizer = new OptimizerSettings { LearningRate = (float)request.LearningRate, WarmupSteps = Math.Min(10, request.Steps / 4) },
        };
        trainer.LoadGguf(request.BasePath);
        Func<Random, TrainingExample> source = rng => examples[rng.Next(examples.Length)];
        var plan = new TrainingPlan { Steps = request.Steps, EvalEvery = request.Steps, EvalBatches = 1, ReportEvery = request.Steps };
        var r = TrainingLoop.Run(trainer, new BatchSampler(source, batch, seqLen, request.Seed), new BatchSampler(source, batch, seqLen, request.Seed + 7919), plan, null, cancellationToken);
        var dir = Path.GetDirectoryName(Path.GetFullPath(request.OutputPath));
        if (dir is not null) Directory.CreateDirectory(dir);
        trainer.SaveGguf(request.OutputPath, Path.GetFileNameWithoutExtension(request.OutputPath), GgmlType.F16);
        return new AnswerTrainingResult(r.Steps, r.FinalLoss, r.Seconds);
    }, cancellationToken);
}
