using Consort.LlamaCpp;
using Consort.Methods.Logit;
using Consort.Testing;

namespace Consort.Tests.Conformance;

/// <summary>The test kit's own table model keeps the token-model contract.</summary>
public sealed class TableTokenModelConformance : TokenModelConformance
{
    internal static readonly string[] Corpus = ["once upon a time there was a cat.", "once upon a time there was a dog.", "the cat sat on the mat."];
    protected override string Prompt => "once upon a time";
    protected override ITokenModel CreateModel() => new TableTokenModel("table", Corpus);
}

/// <summary>Top-k-only access (as endpoints give) keeps the contract too.</summary>
public sealed class TopKTableTokenModelConformance : TokenModelConformance
{
    protected override string Prompt => "once upon a time";
    protected override ITokenModel CreateModel() => new TableTokenModel("table-top5", TableTokenModelConformance.Corpus, topK: 5);
}

/// <summary>The llama.cpp backend on a real GGUF file.</summary>
public sealed class LlamaTokenModelConformance : TokenModelConformance
{
    protected override double Tolerance => 2e-3; // batched and single decodes round differently in llama.cpp
    protected override ITokenModel CreateModel() => LlamaModelFactory.LoadTokenModel(new LlamaModelOptions { Path = TestPaths.Stories260K, MaxSequences = 4 });
}

/// <summary>A fusion of two real models sharing a vocabulary.</summary>
public sealed class FusedTokenModelConformance : TokenModelConformance
{
    protected override double Tolerance => 2e-3;
    protected override ITokenModel CreateModel()
    {
        var a = LlamaModelFactory.LoadTokenModel(new LlamaModelOptions { Path = TestPaths.Stories260K, MaxSequences = 4 });
        var b = LlamaModelFactory.LoadTokenModel(new LlamaModelOptions { Path = TestPaths.Llama2Xs, MaxSequences = 4 });
        return new OwningFusion(new FusedTokenModel("fused", [a, b], [0.5, 0.5], FusionCombine.Prob), a, b);
    }

    // The fusion does not own its members; the test disposes all three.
    private sealed class OwningFusion(FusedTokenModel inner, params IDisposable[] owned) : ITokenModel
    {
        public ModelDescriptor Descriptor => inner.Descriptor;
        public ITokenizer Tokenizer => inner.Tokenizer;
        public DistributionKind DistributionKind => inner.DistributionKind;
        public UsageMeter Usage => inner.Usage;
        public ValueTask<ITokenSequence> StartAsync(IReadOnlyList<int> prompt, CancellationToken ct = default) => inner.StartAsync(prompt, ct);
        public ValueTask StepAsync(IReadOnlyList<(ITokenSequence Sequence, int Token)> steps, CancellationToken ct = default) => inner.StepAsync(steps, ct);
        public ValueTask<float[]> ScoreAsync(IReadOnlyList<int> prompt, IReadOnlyList<int> continuation, CancellationToken ct = default) => inner.ScoreAsync(prompt, continuation, ct);
        public void Dispose() { inner.Dispose(); foreach (var o in owned) o.Dispose(); }
    }
}
