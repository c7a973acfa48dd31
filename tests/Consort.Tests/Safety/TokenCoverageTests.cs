using Consort.Formats.Gguf;
using Consort.LlamaCpp;
using Consort.Testing;

namespace Consort.Tests.Safety;

/// <summary>
/// Which characters a vocabulary can encode, and the tokenizer refusing (or replacing) the rest before llama.cpp
/// sees them: TinyStories-656K-Q8_0 has no byte-fallback tokens and no '+' or '=' (llama.cpp used to abort on them).
/// </summary>
public sealed class TokenCoverageTests
{
    private static TokenCoverage Coverage(string path)
    {
        using var f = GgufFile.Open(path);
        return TokenCoverage.From(f)!;
    }

    [Fact]
    public void ByteFallbackAndByteLevelVocabulariesCoverEverything()
    {
        Assert.True(Coverage(TestPaths.Stories260K).CoversAll);                              // <0x00>..<0xFF>
        Assert.True(Coverage(Path.Combine(TestPaths.RepoRoot, "zoo", "arith.gguf")).CoversAll); // 256 GPT-2 byte tokens
        Assert.Null(Coverage(TestPaths.Stories260K).FindUnencodable("2+2=4 ✓ 日本"));
    }

    [Fact]
    public void TheQ8ModelLacksPlusAndEquals()
    {
        var c = Coverage(TestPaths.TinyStories656K);
        Assert.False(c.CoversAll);
        Assert.Null(c.FindUnencodable("Once upon a time, there was a girl."));
        Assert.Equal((4, '+'), c.FindUnencodable("Q: 5+56= A:"));
        Assert.Equal((0, 0x1F600), c.FindUnencodable("\U0001F600 smile"));
        Assert.Equal("Q: 5?56? A:", c.Replace("Q: 5+56= A:", "?"));
        Assert.Equal((3, '#'), c.FindUnencodable("Tom#1"));
        Assert.Equal("?", c.DefaultReplacement()); // it has no U+FFFD token, but a '?'
        Assert.Equal("a?b", c.Replace("a+b", c.DefaultReplacement()));
    }

    [Fact]
    public void TheTokenizerRefusesWithAClearErrorOrReplaces()
    {
        using var strict = LlamaModelFactory.LoadTokenModel(new LlamaModelOptions { Path = TestPaths.TinyStories656K, Name = "q8", ContextSize = 64, MaxSequences = 1 });
        var e = Assert.Throws<ConsortException>(() => strict.Tokenizer.Encode("Q: 5+56= A:", addBos: true));
        Assert.Contains("model 'q8' cannot encode '+' (U+002B) at character 4", e.Message);
        Assert.Contains("\"unencodable\": \"replace\"", e.Message);
        Assert.Equal(UnencodableMode.Error, strict.LlamaTokenizer.UnencodableHandling);

        using var lenient = LlamaModelFactory.LoadTokenModel(new LlamaModelOptions
        {
            Path = TestPaths.TinyStories656K, Name = "q8", ContextSize = 64, MaxSequences = 1, Unencodable = UnencodableMode.Replace,
        });
        var replaced = lenient.Tokenizer.Encode("Q: 5+56= A:", addBos: true);
        Assert.Equal(lenient.Tokenizer.Encode("Q: 5?56? A:", addBos: true), replaced);
        Assert.True(replaced.Length > 5);
        // Text it can encode is untouched either way.
        Assert.Equal(strict.Tokenizer.Encode("Once upon a time", addBos: true), lenient.Tokenizer.Encode("Once upon a time", addBos: true));
    }

    [Fact]
    public void FullCoverageModelsSkipTheCheck()
    {
        using var m = LlamaModelFactory.LoadTokenModel(new LlamaModelOptions { Path = TestPaths.Stories260K, ContextSize = 64, MaxSequences = 1 });
        Assert.Null(m.LlamaTokenizer.UnencodableHandling);
        Assert.NotEmpty(m.Tokenizer.Encode("2+2=4 ✓", addBos: true));
    }
}
