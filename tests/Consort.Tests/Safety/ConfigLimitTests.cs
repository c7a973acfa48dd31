using System.Text.Json.Nodes;
using Consort.Config;
using Consort.Evaluation;
using Consort.Formats;
using Consort.Testing;

namespace Consort.Tests.Safety;

/// <summary>Every number that sizes work is bounded before any work, and config parsing has depth, size and duplicate-key limits.</summary>
public sealed class ConfigLimitTests
{
    private static RunConfig Parse(string json) => RunConfig.Parse(JsonNode.Parse(json)!.AsObject(), TestPaths.RepoRoot, "test");

    private static string Model(string extra) =>
        $$"""{"method": "single_model", "task": "x", "models": [{"path": "zoo:arith"{{extra}}}]}""";

    [Theory]
    [InlineData(", \"threads\": 100000", "'threads' is 100000; allowed: 1..")]
    [InlineData(", \"threads\": 0", "'threads' is 0")]
    [InlineData(", \"threads\": 2.5", "'threads' must be a whole number")]
    [InlineData(", \"context_size\": 1", "'context_size' is 1; allowed: 2..1,048,576")]
    [InlineData(", \"context_size\": 99999999999", "'context_size' is 99999999999")]
    [InlineData(", \"max_sequences\": 65", "'max_sequences' is 65; allowed: 1..64 (llama.cpp's sequence limit)")]
    [InlineData(", \"seed\": 1e12", "'seed' is 1000000000000")]
    [InlineData(", \"unencodable\": 3", "'unencodable' is '3'; valid values: error, replace")]
    public void ModelEntryNumbersAreBounded(string extra, string message)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(Model(extra)));
        Assert.Contains(message, e.Message);
        Assert.Contains("model 'zoo:arith'", e.Message);
    }

    [Fact]
    public void TheThreadBoundComesFromTheMachine()
    {
        Assert.Equal(Math.Clamp(Environment.ProcessorCount * 4, 4, 512), Limits.MaxThreads);
        var e = Assert.Throws<ConfigException>(() => Parse(Model($", \"threads\": {Limits.MaxThreads + 1}")));
        Assert.Contains($"processor of this machine's {Environment.ProcessorCount}", e.Message);
        Parse(Model($", \"threads\": {Limits.MaxThreads}"));
    }

    [Theory]
    [InlineData("\"concurrency\": 0", "'concurrency' is 0; allowed: 1..1,024")]
    [InlineData("\"concurrency\": 100000", "'concurrency' is 100000")]
    [InlineData("\"limit\": 0", "'limit' is 0")]
    public void RunNumbersAreBounded(string extra, string message)
    {
        var e = Assert.Throws<ConfigException>(() => Parse($$"""{"method": "single_model", "task": "x", "models": ["zoo:arith"], {{extra}}}"""));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void TaskMaxTokensIsBounded()
    {
        var e = Assert.Throws<ConfigException>(() => EvalTaskOptions.Parse(JsonNode.Parse("""{"dataset": "x", "max_tokens": 2000000000}""")));
        Assert.Contains("'max_tokens' is 2000000000; allowed: 1..1,048,576", e.Message);
    }

    [Fact]
    public void ConfigFilesHaveParserLimits()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp.File("dup.json"), """{"method": "single_model", "task": "x", "models": ["zoo:arith"], "method": "cascade"}""");
        Assert.Contains("Duplicate property 'method'", Assert.Throws<ConfigException>(() => RunConfig.Load(tmp.File("dup.json"))).Message);

        File.WriteAllText(tmp.File("deep.json"), "{\"hyperparameters\": " + new string('[', 100_000) + new string(']', 100_000) + "}");
        Assert.Contains("maximum configured depth of 64", Assert.Throws<ConfigException>(() => RunConfig.Load(tmp.File("deep.json"))).Message);

        using (var big = File.Create(tmp.File("big.json"))) big.SetLength(Limits.MaxConfigBytes + 1);
        Assert.Contains("larger than the limit", Assert.Throws<ConfigException>(() => RunConfig.Load(tmp.File("big.json"))).Message);

        File.WriteAllBytes(tmp.File("bin.json"), [(byte)'{', (byte)'"', 0xFF, 0xFE, (byte)'"', (byte)':', (byte)'1', (byte)'}']);
        Assert.Contains("not valid UTF-8", Assert.Throws<ConfigException>(() => RunConfig.Load(tmp.File("bin.json"))).Message);

        Assert.Contains("is a folder, not a config file", Assert.Throws<ConfigException>(() => RunConfig.Load(tmp.Path)).Message);
    }

    [Fact]
    public void LongValuesAreCutInMessages()
    {
        string huge = new('x', 1_000_000);
        var e = Assert.Throws<ConfigException>(() => Parse($$"""{"method": "single_model", "task": "x", "models": [{"path": "zoo:arith", "threads": "{{huge}}"}]}"""));
        Assert.True(e.Message.Length < 500, $"{e.Message.Length} characters");
        Assert.Contains("characters)", e.Message);
        var e2 = Assert.Throws<ConfigException>(() => Parse($$"""{"method": "single_model", "task": "x", "models": ["{{huge}}\n\u0000"]}"""));
        Assert.True(e2.Message.Length < 700, $"{e2.Message.Length} characters");
        Assert.DoesNotContain('\0', e2.Message);
    }

    [Fact]
    public void DatasetsHaveParserLimits()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp.File("dup.json"), """{"test": [{"id": "a", "input": "x", "input": "y"}]}""");
        var e = Assert.Throws<ConsortException>(() => EvalDataset.Load(tmp.File("dup.json"), []));
        Assert.Contains("Duplicate property 'input'", e.Message);
        Assert.Contains("dup.json", e.Message);
    }

    [Fact]
    public void MessageTextEscapesAndCuts()
    {
        Assert.Equal("a\\nb\\0c\\x1B", MessageText.Escape("a\nb\0c\u001b"));
        Assert.Equal("'ok'", MessageText.Quote("ok"));
        var cut = MessageText.Escape(new string('y', 1000), 10);
        Assert.StartsWith("yyyyyyyyyy... (1000 characters)", cut);
        Assert.Equal("'+' (U+002B)", MessageText.Character('+'));
        Assert.Equal("日本 ✓", MessageText.Escape("日本 ✓"));
    }

    [Fact]
    public void SafeJsonNamesTheKindOfFile()
    {
        using var tmp = new TempDir();
        File.WriteAllText(tmp.File("c.json"), "{");
        Assert.IsType<ModelFileException>(Assert.ThrowsAny<ConsortException>(() => SafeJson.ParseNodeFile(tmp.File("c.json"), 100, "a config.json", SafeJson.Kind.Model)));
        Assert.IsType<ConfigException>(Assert.ThrowsAny<ConsortException>(() => SafeJson.ParseNodeFile(tmp.File("c.json"), 100, "a run config", SafeJson.Kind.Config)));
        Assert.Contains("is a folder, not a run config", Assert.ThrowsAny<ConsortException>(() => SafeJson.ParseNodeFile(tmp.Path, 100, "a run config", SafeJson.Kind.Config)).Message);
    }
}
