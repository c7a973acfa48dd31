using System.Text.Json.Nodes;
using Consort.Methods;

namespace Consort.Tests.Methods;

public class OptionBinderTests
{
    private enum Mode { [OptionValue("fast", "quick")] Fast, Slow }

    private sealed class Opts : MethodOptions
    {
        [Option("A rate.", Min = 0, Max = 1)] public double Rate { get; set; } = 0.25;
        [Option("Rounds.", Min = 1, Max = 10, Aliases = ["num_rounds"])] public int Rounds { get; set; } = 2;
        [Option("Mode.")] public Mode Mode { get; set; } = Mode.Slow;
        [Option("Names.")] public string[]? Names { get; set; }
        [Option("Weights.", Min = 0)] public double[]? Weights { get; set; }
        [Option("A pick.", Allowed = ["a", "b"])] public string Pick { get; set; } = "a";
        [Option("A flag.")] public bool Flag { get; set; }
    }

    private static Opts Bind(string json) => OptionBinder.Bind<Opts>(JsonNode.Parse(json)!.AsObject(), "run 'r' (method m)");

    [Fact]
    public void Defaults_are_written_once_and_read_from_the_class()
    {
        var info = OptionBinder.Describe(typeof(Opts));
        Assert.Equal("0.25", info.Single(i => i.Name == "rate").Default);
        Assert.Equal("slow", info.Single(i => i.Name == "mode").Default);
        Assert.Equal(["fast", "slow"], info.Single(i => i.Name == "mode").Allowed!);
        Assert.Contains(info, i => i.Name == "max_tokens" && i.Aliases.Contains("max_response_length"));
        var o = Bind("{}");
        Assert.Equal(0.25, o.Rate);
        Assert.Null(o.MaxTokens);
    }

    [Fact]
    public void Values_aliases_and_enum_spellings_bind()
    {
        var o = Bind("""{"rate": 1, "num_rounds": 3, "mode": "quick", "names": ["x"], "weights": [0.5, 2], "flag": 1, "max_response_length": 64, "batch_size": 32}""");
        Assert.Equal(1.0, o.Rate);
        Assert.Equal(3, o.Rounds);
        Assert.Equal(Mode.Fast, o.Mode);
        Assert.Equal(["x"], o.Names!);
        Assert.Equal([0.5, 2.0], o.Weights!);
        Assert.True(o.Flag);
        Assert.Equal(64, o.MaxTokens);
    }

    [Theory]
    [InlineData("""{"rate": 1.5}""", "'rate' = 1.5 is out of range; valid: [0, 1]")]
    [InlineData("""{"rounds": 2.5}""", "'rounds' should be a whole number")]
    [InlineData("""{"rounds": 1e12}""", "'rounds' = 1e12 is too large")]
    [InlineData("""{"mode": "medium"}""", "'mode' = \"medium\" is not valid; valid: fast, slow")]
    [InlineData("""{"pick": "c"}""", "'pick' = \"c\" is not valid; valid: a, b")]
    [InlineData("""{"weights": [1, -2]}""", "'weights[1]' = -2 is out of range")]
    [InlineData("""{"names": "x"}""", "'names' should be a list of string")]
    [InlineData("""{"ratee": 0.1}""", "unknown hyperparameter 'ratee'; valid: rate,")]
    [InlineData("""{"rounds": 2, "num_rounds": 3}""", "'rounds' and 'num_rounds' both set")]
    [InlineData("""{"top_p": 0}""", "'top_p' = 0 is out of range; valid: (0, 1]")]
    [InlineData("""{"flag": "yes"}""", "'flag' should be true or false")]
    public void Bad_values_get_one_message_naming_where_key_value_and_what_is_valid(string json, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => Bind(json));
        Assert.StartsWith("run 'r' (method m): ", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Long_values_are_cut_in_messages()
    {
        var e = Assert.Throws<ConfigException>(() => Bind($$"""{"pick": "{{new string('z', 5000)}}"}"""));
        Assert.True(e.Message.Length < 600, e.Message.Length.ToString());
        Assert.Contains("(5000 characters)", e.Message);
    }

    [Fact]
    public void Snake_case_of_property_names()
    {
        Assert.Equal("deferral_rate", OptionBinder.SnakeCase("DeferralRate"));
        Assert.Equal("max_tokens", OptionBinder.SnakeCase("MaxTokens"));
        Assert.Equal("top_k", OptionBinder.SnakeCase("TopK"));
        Assert.Equal("lora_hub_dev_samples", OptionBinder.SnakeCase("LoraHubDevSamples"));
    }
}
