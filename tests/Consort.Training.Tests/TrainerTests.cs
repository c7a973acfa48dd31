using Consort.Formats.Gguf;
using Consort.Testing;
using Consort.Training;
using Consort.Training.Skills;

namespace Consort.Training.Tests;

public class TrainerTests
{
    private static readonly TinyLlamaConfig Tiny = new() { Dim = 64, Layers = 2, Heads = 2, Ffn = 128, Context = 64 };

    private static Func<Random, TrainingExample> Text => rng => TrainingExample.FromText(GenericText.Next(rng));

    [Fact]
    public void Training_lowers_loss_and_llama_cpp_reproduces_it_from_the_saved_gguf()
    {
        using var dir = new TempDir();
        using var trainer = new TinyLlamaTrainer(Tiny, batch: 8, seqLen: 32, threads: 1) { TotalSteps = 80 };
        trainer.InitializeRandom(1);
        var held = new BatchSampler(Text, 8, 32, seed: 99).Next();
        float before = trainer.EvalLoss(held);
        Assert.InRange(before, 5.0, 6.2); // ~ln(258) for a fresh model
        var sampler = new BatchSampler(Text, 8, 32, seed: 1);
        for (int i = 0; i < 80; i++) trainer.TrainStep(sampler.Next());
        float after = trainer.EvalLoss(held);
        Assert.True(after < before - 2.0, $"loss {before} -> {after}");

        var path = dir.File("tiny.gguf");
        trainer.SaveGguf(path, "tiny-test");
        using var check = new LlamaCppCheck(path, contextSize: 64, threads: 1);
        double cpp = check.Loss(held, 32);
        Assert.True(Math.Abs(cpp - after) / after < 0.01, $"trainer {after} vs llama.cpp {cpp}");

        // Answer-only masking: the trainer's masked loss equals llama.cpp's loss over the same unmasked targets.
        var pairs = new BatchSampler(rng => TrainingExample.FromPair("Q: " + rng.Next(10) + "+1= A:", " x", answerOnly: true), 8, 32, seed: 5).Next();
        Assert.Contains(0f, pairs.Mask);
        float masked = trainer.EvalLoss(pairs);
        double cppMasked = check.Loss(pairs, 32);
        Assert.True(Math.Abs(cppMasked - masked) / masked < 0.01, $"masked: trainer {masked} vs llama.cpp {cppMasked}");
    }

    [Fact]
    public void Llama_cpp_tokenizes_the_byte_vocabulary_exactly()
    {
        using var dir = new TempDir();
        using var trainer = new TinyLlamaTrainer(Tiny, 1, 8, 1);
        trainer.InitializeRandom(2);
        var path = dir.File("t.gguf");
        trainer.SaveGguf(path, "tok", GgmlType.F16);
        using var check = new LlamaCppCheck(path, contextSize: 64, threads: 1);
        Assert.True(check.AddsBos);
        const string text = "Q: Where does Bexor live? A: Tulmar. Ünïcode ✓ 7+48=55";
        Assert.Equal(new[] { ByteTokenizer.Bos }.Concat(ByteTokenizer.Encode(text)), check.Tokenize(text));
    }

    [Fact]
    public void Fine_tuning_starts_from_the_loaded_weights()
    {
        using var dir = new TempDir();
        var path = dir.File("a.gguf");
        using (var a = new TinyLlamaTrainer(Tiny, 2, 16, 1)) { a.InitializeRandom(3); a.SaveGguf(path, "a"); }
        using var b = new TinyLlamaTrainer(Tiny, 2, 16, 1);
        b.LoadGguf(path);
        using var f = GgufFile.Open(path);
        Assert.Equal(f.ReadFloat32(f.FindTensor("blk.1.ffn_down.weight")!), b.GetWeights()["blk.1.ffn_down.weight"]);
        var wrong = new TinyLlamaConfig { Dim = 32, Layers = 1, Heads = 2, Ffn = 64, Context = 64 };
        using var c = new TinyLlamaTrainer(wrong, 1, 8, 1);
        var e = Assert.Throws<ModelFileException>(() => c.LoadGguf(path));
        Assert.Contains("does not match", e.Message);
    }
}
