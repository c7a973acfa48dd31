using Consort.LlamaCpp;
using Consort.Testing;

namespace Consort.Tests.LlamaCpp;

/// <summary>
/// Different models decode at the same time (llama_decode is called directly, without LLamaSharp's process-wide
/// lock); their results must be exactly those of decoding one after the other.
/// </summary>
public class ConcurrentDecodeTests
{
    private static async Task<List<float[]>> Greedy(ITokenModel model, int steps)
    {
        var ids = model.Tokenizer.Encode("Once upon a time", addBos: true);
        using var seq = await model.StartAsync(ids);
        var rows = new List<float[]> { (float[])seq.Next.Logits!.Clone() };
        for (int i = 0; i < steps; i++)
        {
            await seq.AppendAsync([seq.Next.ArgMax()]);
            rows.Add((float[])seq.Next.Logits!.Clone());
        }
        return rows;
    }

    // Two different models, and the same file loaded twice (one set of weights, two contexts).
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task TwoModelsDecodingConcurrentlyGiveTheSequentialLogits(bool sameFile)
    {
        Assert.True(NativeDecode.Direct || !OperatingSystem.IsLinux(), "llama_decode should be called directly on Linux");
        using var a = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, MaxSequences = 1 });
        using var b = LlamaModelFactory.Load(new LlamaModelOptions { Path = sameFile ? TestPaths.Stories260K : TestPaths.Llama2Xs, Name = "second", MaxSequences = 1 });
        var expectedA = await Greedy(a.Tokens!, 40);
        var expectedB = await Greedy(b.Tokens!, 40);
        for (int round = 0; round < 3; round++)
        {
            var ta = Task.Run(() => Greedy(a.Tokens!, 40));
            var tb = Task.Run(() => Greedy(b.Tokens!, 40));
            var (gotA, gotB) = (await ta, await tb);
            Assert.Equal(expectedA.Count, gotA.Count);
            for (int i = 0; i < expectedA.Count; i++) Assert.Equal(expectedA[i], gotA[i]);
            for (int i = 0; i < expectedB.Count; i++) Assert.Equal(expectedB[i], gotB[i]);
        }
    }
}
