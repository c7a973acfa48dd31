using System.Diagnostics;
using Consort.LlamaCpp;
using Consort.Methods.Logit;
using Consort.Methods.Logit.Alignment;
using Consort.Testing;
using Microsoft.Extensions.AI;
using Xunit;

namespace Consort.Tests.Methods.Logit;

/// <summary>stories260k (512-token SentencePiece) and TinyStories-656K (2048-token BPE) as members, with room for the beam.</summary>
public sealed class DifferentTokenizersFixture : IDisposable
{
    public DifferentTokenizersFixture()
    {
        Stories = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, Name = "stories260k", MaxSequences = 20, ContextSize = 512 });
        Tiny = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.TinyStories656K, Name = "tinystories656k", MaxSequences = 20, ContextSize = 512 });
    }

    public ConsortModel Stories { get; }
    public ConsortModel Tiny { get; }

    public void Dispose()
    {
        Stories.Dispose(); Tiny.Dispose();
    }
}

public sealed class CrossTokenizerFusionTests(DifferentTokenizersFixture fx, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<DifferentTokenizersFixture>
{
    // Held-out TinyStories-style text written for this test (ASCII: TinyStories-656K has no byte fallback).
    private const string Text = "Once upon a time, there was a little girl named Sue. Sue had a big yellow dog. The dog liked to run "
        + "in the grass and jump in the pond. One day, Sue and her dog went to the park. They played all day and had lots of fun.";

    [Fact]
    public async Task Logit_fusion_with_align_bytes_fuses_different_tokenizers_below_the_worse_models_bits_per_byte()
    {
        // Without byte alignment the different vocabularies are refused before work.
        var e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new LogitFusionMethod(), [fx.Stories.Descriptor, fx.Tiny.Descriptor], "{}"));
        Assert.Contains("share one vocabulary", e.Message);

        using var fused = await MethodHarness.CreateAsync(new LogitFusionMethod(), [fx.Stories, fx.Tiny], """{"align": "bytes", "max_tokens": 60}""");
        Assert.Equal(ByteVocabulary.Identity, fused.Descriptor.Vocabulary);
        var bytes = ByteVocabulary.Instance.Encode(Text);
        async Task<double> Bpb(ITokenModel m) => -(await m.ScoreAsync([ByteVocabulary.BosId], bytes)).Sum() / Math.Log(2) / bytes.Length;
        double a = await Bpb(new ByteLevelTokenModel(fx.Stories.Tokens!)), b = await Bpb(new ByteLevelTokenModel(fx.Tiny.Tokens!)), f = await Bpb(fused.Tokens!);
        output.WriteLine($"bits/byte on {bytes.Length} held-out bytes: stories260k {a:F4}, tinystories-656k {b:F4}, fusion {f:F4}");
        Assert.True(f < Math.Max(a, b), $"fusion {f} not below the worse model {Math.Max(a, b)}");

        var sw = Stopwatch.StartNew();
        var r = await fused.Chat.GetResponseAsync([new ChatMessage(ChatRole.User, "Once upon a time")]);
        output.WriteLine($"fused greedy ({r.Text.Length} bytes in {sw.Elapsed.TotalSeconds:F2}s): {r.Text}");
        Assert.True(r.Text.Length >= 20 && r.Text.Contains(' '), r.Text);
        Assert.True(r.Text.All(c => c < 128), r.Text);
        var trace = r.GetTrace();
        Assert.Equal(["stories260k", "tinystories656k"], trace.Where(t => t.Role == "member").Select(t => t.Model));
    }
}
