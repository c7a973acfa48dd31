using Consort.LlamaCpp;
using Consort.Methods.Logit;
using Consort.Testing;
using Xunit;

namespace Consort.Tests.LlamaCpp;

/// <summary>
/// Token-level methods batch through their members: concurrent fused sequences step each member in shared llama_decode
/// calls (the members' engines coalesce them), and every fused sequence gets what it gets alone, bit for bit.
/// </summary>
public sealed class FusedBatchingTests
{
    [Fact]
    public async Task ConcurrentFusedSequences_ShareTheMembersDecodeCalls_SameDistributions()
    {
        using var a = LlamaModelFactory.LoadTokenModel(new LlamaModelOptions { Path = TestPaths.Stories260K, ContextSize = 128, MaxSequences = 4 });
        using var b = LlamaModelFactory.LoadTokenModel(new LlamaModelOptions { Path = TestPaths.Llama2Xs, ContextSize = 128, MaxSequences = 4 });
        using var fused = new FusedTokenModel("fused", [a, b], [0.5, 0.5], FusionCombine.Prob);
        string[] prompts = ["Once upon a time", "The little dog", "Lily saw a bird", "Tom and Sam"];
        var allStarted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int starts = 0;
        async Task<List<float[]>> Decode(string text, bool together)
        {
            using var seq = await fused.StartAsync(fused.Tokenizer.Encode(text, addBos: true));
            // Together, the sequences decode at the same time: each starts stepping once all have started (on an idle
            // machine one sequence's 24 steps take a few milliseconds, less than the thread pool may take to start the next).
            if (together)
            {
                if (Interlocked.Increment(ref starts) == prompts.Length) allStarted.SetResult();
                await allStarted.Task.WaitAsync(TimeSpan.FromSeconds(60));
            }
            var rows = new List<float[]> { (float[])seq.Next.Logits!.Clone() };
            for (int i = 0; i < 24; i++)
            {
                await seq.AppendAsync([seq.Next.ArgMax()]);
                rows.Add((float[])seq.Next.Logits!.Clone());
            }
            return rows;
        }
        var alone = new List<List<float[]>>();
        foreach (var p in prompts) alone.Add(await Decode(p, together: false));
        var (sa, sb) = (a.Statistics, b.Statistics);
        var together = await Task.WhenAll(prompts.Select(p => Task.Run(() => Decode(p, together: true))));
        for (int i = 0; i < prompts.Length; i++)
            for (int t = 0; t < alone[i].Count; t++)
                Assert.True(alone[i][t].AsSpan().SequenceEqual(together[i][t]), $"fused sequence {i}, step {t}");
        foreach (var (m, before) in new[] { (a, sa), (b, sb) })
        {
            var s = m.Statistics;
            long shared = s.SharedSequenceSteps - before.SharedSequenceSteps, steps = s.SequenceSteps - before.SequenceSteps;
            // Member steps of the four fused sequences went through calls shared with the other fused sequences (how
            // many depends on timing: a member step whose sequence comes back late runs in the next call).
            Assert.True(shared >= steps / 4, $"{m.Descriptor.Name}: {shared} of {steps} steps in shared calls");
            Assert.True(s.MostSequencesInOneCall >= 3, $"{m.Descriptor.Name}: at most {s.MostSequencesInOneCall} sequences per call");
        }
    }
}
