using Consort.LlamaCpp;
using Consort.Testing;

namespace Consort.Tests.LlamaCpp;

/// <summary>Loads the two shared-vocabulary tiny models once per test class.</summary>
public sealed class LlamaFixture : IDisposable
{
    public LlamaFixture()
    {
        Stories = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Stories260K, Name = "stories260k", ContextSize = 512 });
        Xs = LlamaModelFactory.Load(new LlamaModelOptions { Path = TestPaths.Llama2Xs, Name = "llama2xs" });
    }

    public ConsortModel Stories { get; }
    public ConsortModel Xs { get; }
    public LlamaTokenModel StoriesTokens => (LlamaTokenModel)Stories.Tokens!;

    public void Dispose()
    {
        Stories.Dispose();
        Xs.Dispose();
    }
}
