using System.CommandLine;
using Consort.Cli.Commands;
using Consort.Formats.Gguf;
using Consort.LlamaCpp;
using Consort.Testing;
using Consort.Training;
using Consort.Training.Skills;
using Xunit.Abstractions;

namespace Consort.Training.Tests;

/// <summary>LoRA fine-tuning of the committed zoo base (zoo/base.gguf), checked against llama.cpp's own adapter path.</summary>
public class LoraTrainingTests(ITestOutputHelper log)
{
    private const int Batch = 4, SeqLen = 64;
    private static string BaseModel => Path.Combine(TestPaths.RepoRoot, "zoo", "base.gguf");

    // A small skill set: 8 facts of the zoo's facts_a training split (its data seed), answer-only loss as the zoo's
    // experts use. Small enough that a few seconds of LoRA training visibly learn it (the full skills plateau for minutes).
    private static readonly IReadOnlyList<SkillItem> Facts = ZooBuilder.GenerateData(1234)[FactsWorld.HalfA].Train.Take(8).ToList();
    private static Func<Random, TrainingExample> FactsSource =>
        rng => { var it = Facts[rng.Next(Facts.Count)]; return TrainingExample.FromPair(it.Input, " " + it.Output, answerOnly: true); };

    private static TinyLlamaConfig BaseConfig()
    {
        using var f = GgufFile.Open(BaseModel);
        return TinyLlamaConfig.FromGguf(f);
    }

    /// <summary>llama.cpp's mean NLL over the unmasked targets of <paramref name="batch"/>, the model loaded through LlamaModelOptions.</summary>
    private static async Task<double> LlamaCppLoss(string model, IReadOnlyList<LoraAdapterOption> adapters, TrainingBatch batch)
    {
        using var m = LlamaModelFactory.LoadTokenModel(new LlamaModelOptions { Path = model, ContextSize = SeqLen, Threads = 1, MaxSequences = 1, Adapters = adapters });
        double sum = 0; int count = 0;
        for (int w = 0; w < batch.Inputs.Length / SeqLen; w++)
        {
            int o = w * SeqLen;
            var lp = await m.ScoreAsync([batch.Inputs[o]], batch.Targets[o..(o + SeqLen)]);
            for (int i = 0; i < SeqLen; i++)
                if (batch.Mask[o + i] != 0) { sum -= lp[i]; count++; }
        }
        return sum / count;
    }

    [Fact]
    public async Task Lora_training_lowers_the_loss_keeps_the_base_frozen_and_matches_llama_cpp_with_the_adapter_and_merged()
    {
        using var dir = new TempDir();
        var lora = new LoraSettings { Rank = 8, Alpha = 16, Seed = 3 };
        using var trainer = new TinyLlamaTrainer(BaseConfig(), Batch, SeqLen, threads: 2, lora)
        {
            TotalSteps = 30, Optimizer = new OptimizerSettings { LearningRate = 5e-3f, WarmupSteps = 5 },
        };
        trainer.LoadGguf(BaseModel);
        var held = new BatchSampler(FactsSource, Batch, SeqLen, seed: 99).Next();
        float before = trainer.EvalLoss(held);
        var sampler = new BatchSampler(FactsSource, Batch, SeqLen, seed: 1);
        for (int i = 0; i < 30; i++) trainer.TrainStep(sampler.Next());
        float after = trainer.EvalLoss(held);
        Assert.True(after < before * 0.6, $"loss {before} -> {after}");

        // Frozen: every base tensor is bit-identical to the file's values after training.
        var weights = trainer.GetWeights();
        using (var f = GgufFile.Open(BaseModel))
            foreach (var (name, values) in weights)
                Assert.True(f.ReadFloat32(f.FindTensor(name)!).AsSpan().SequenceEqual(values), $"{name} changed");

        // The trained adapter through llama.cpp (LlamaModelOptions.Adapters, scale 1) gives the trainer's loss.
        var adapter = dir.File("facts-lora.gguf");
        trainer.SaveLoraAdapter(adapter);
        double cpp = await LlamaCppLoss(BaseModel, [new LoraAdapterOption(adapter)], held);
        Assert.True(Math.Abs(cpp - after) / after < 0.01, $"trainer {after} vs llama.cpp base+adapter {cpp}");
        // Not trivially: without the adapter llama.cpp gives the base's loss.
        double cppBase = await LlamaCppLoss(BaseModel, [], held);
        Assert.True(Math.Abs(cppBase - before) / before < 0.01, $"trainer base {before} vs llama.cpp base {cppBase}");

        // The merged model (W + alpha/r B A) as a plain GGUF gives the same loss.
        var merged = dir.File("facts-merged.gguf");
        trainer.SaveGguf(merged, "facts-merged", GgmlType.F32);
        double cppMerged = await LlamaCppLoss(merged, [], held);
        Assert.True(Math.Abs(cppMerged - after) / after < 0.01, $"trainer {after} vs llama.cpp merged {cppMerged}");
        log.WriteLine($"loss {before:F5} -> {after:F5}; llama.cpp base {cppBase:F5}, base+adapter {cpp:F5}, merged {cppMerged:F5}");
    }

    [Fact]
    public void Adapter_file_has_llama_cpp_names_shapes_and_alpha_and_the_trainable_count_is_r_times_in_plus_out()
    {
        using var dir = new TempDir();
        var cfg = BaseConfig();
        int r = 4;
        using var trainer = new TinyLlamaTrainer(cfg, 1, 8, threads: 1, new LoraSettings { Rank = r, Alpha = 8 });
        trainer.LoadGguf(BaseModel);
        long expected = cfg.Layers * (long)r * (4 * (cfg.Dim + cfg.Dim) + 2 * (cfg.Dim + cfg.Ffn) + (cfg.Ffn + cfg.Dim));
        Assert.Equal(expected, trainer.TrainableParameterCount);
        Assert.True(trainer.TrainableParameterCount < cfg.ParameterCount / 5);

        var path = dir.File("a.gguf");
        trainer.SaveLoraAdapter(path);
        using var f = GgufFile.Open(path);
        Assert.Equal("adapter", f.FileKind);
        Assert.Equal("lora", f.GetString("adapter.type"));
        Assert.Equal("llama", f.Architecture);
        Assert.Equal(8.0, f.GetFloat("adapter.lora.alpha"));
        Assert.Equal(cfg.Layers * 7 * 2, f.Tensors.Count);
        Assert.Equal(expected, f.ParameterCount);
        foreach (var (name, dims) in cfg.Tensors().Where(t => t.Name.StartsWith("blk.") && t.Dims.Length == 2))
        {
            var a = f.FindTensor(name + ".lora_a") ?? throw new Xunit.Sdk.XunitException($"{name}.lora_a missing");
            var b = f.FindTensor(name + ".lora_b") ?? throw new Xunit.Sdk.XunitException($"{name}.lora_b missing");
            Assert.Equal(new[] { dims[0], r }, a.Dimensions);
            Assert.Equal(new[] { r, dims[1] }, b.Dimensions);
            Assert.Equal(GgmlType.F32, a.Type);
            Assert.All(f.ReadFloat32(b), v => Assert.Equal(0f, v)); // untrained: B = 0, so the adapter is a no-op
            Assert.Contains(f.ReadFloat32(a), v => v != 0f);
        }
        Assert.Equal(cfg.ParameterCount, trainer.GetWeights().Sum(w => (long)w.Value.Length));

        // Configurable targets: only those get pairs.
        using var qv = new TinyLlamaTrainer(cfg, 1, 8, threads: 1, new LoraSettings { Rank = r, Targets = ["attn_q", "attn_v"] });
        Assert.Equal(cfg.Layers * 2L * r * (cfg.Dim + cfg.Dim), qv.TrainableParameterCount);
        Assert.Equal(["attn_q", "attn_v"], qv.GetLoraUpdates().Select(u => u.Target.Split('.')[2]).Distinct());
    }

    [Fact]
    public void Bad_lora_settings_are_explained()
    {
        var cfg = new TinyLlamaConfig { Dim = 32, Layers = 1, Heads = 2, Ffn = 64, Context = 16 };
        Assert.Contains("rank must be positive", Assert.Throws<ConsortException>(() => new TinyLlamaTrainer(cfg, 1, 8, 1, new LoraSettings { Rank = 0 })).Message);
        Assert.Contains("unknown LoRA target 'attn_x'", Assert.Throws<ConsortException>(() => new TinyLlamaTrainer(cfg, 1, 8, 1, new LoraSettings { Targets = ["attn_x"] })).Message);
        Assert.Contains("alpha", Assert.Throws<ConsortException>(() => new TinyLlamaTrainer(cfg, 1, 8, 1, new LoraSettings { Alpha = float.NaN })).Message);
        using var full = new TinyLlamaTrainer(cfg, 1, 8, 1);
        Assert.Throws<InvalidOperationException>(() => full.SaveLoraAdapter("x.gguf"));
        Assert.Equal(cfg.ParameterCount, full.TrainableParameterCount);
    }

    [Theory]
    [InlineData("--lora-rank 4", "--lora-rank needs --from")]
    [InlineData("--from zoo/base.gguf --lora-rank 0", "--lora-rank 0: the rank must be a positive integer")]
    [InlineData("--from zoo/base.gguf --lora-rank -2", "--lora-rank -2: the rank must be a positive integer")]
    [InlineData("--from zoo/base.gguf --lora-rank 4 --lora-targets attn_q,mlp", "unknown LoRA target 'mlp'")]
    [InlineData("--from zoo/base.gguf --merge-out m.gguf", "need --lora-rank")]
    public async Task Train_command_rejects_bad_lora_options(string args, string message)
    {
        using var dir = new TempDir();
        var root = new RootCommand { new TrainCommand().Build() };
        var argv = new[] { "train", "--out", dir.File("out.gguf"), "--pairs", Path.Combine(TestPaths.RepoRoot, "zoo", "datasets", "facts_a.json"), "--steps", "1" }
            .Concat(args.Replace("zoo/base.gguf", BaseModel).Split(' ')).ToArray();
        var parsed = root.Parse(argv);
        Assert.Empty(parsed.Errors);
        var e = await Assert.ThrowsAsync<ConsortException>(() => parsed.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false }));
        Assert.Contains(message, e.Message);
        Assert.False(File.Exists(dir.File("out.gguf")));
    }

    [Fact]
    public async Task Train_command_writes_the_adapter_to_out_and_the_merged_model_to_merge_out()
    {
        using var dir = new TempDir();
        var root = new RootCommand { new TrainCommand().Build() };
        string adapter = dir.File("facts-lora.gguf"), merged = dir.File("facts-merged.gguf");
        var parsed = root.Parse(["train", "--from", BaseModel, "--lora-rank", "2", "--lora-targets", "attn_q,ffn_down", "--merge-out", merged, "--out", adapter,
            "--pairs", Path.Combine(TestPaths.RepoRoot, "zoo", "datasets", "facts_a.json"), "--steps", "3", "--batch", "2", "--seq-len", "48", "--threads", "1", "--eval-every", "0"]);
        Assert.Empty(parsed.Errors);
        Assert.Equal(0, await parsed.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false }));
        using (var a = Weights.Lora.LoraAdapter.Open(adapter))
        {
            Assert.Equal(2, a.Rank);
            Assert.Equal(4.0, a.Alpha); // default alpha: 2 x rank
            Assert.Equal(2 * BaseConfig().Layers, a.Pairs.Count);
        }
        using var m = GgufFile.Open(merged);
        Assert.Equal(BaseConfig(), TinyLlamaConfig.FromGguf(m));
        Assert.Equal(GgmlType.F16, m.FindTensor("blk.0.attn_q.weight")!.Type);
    }
}
