using Consort.Methods.Logit;
using Consort.OpenAI;
using Consort.Testing;
using Microsoft.Extensions.AI;
using Xunit;

namespace Consort.Server.Tests;

/// <summary>
/// Logit methods over endpoints that give only top-k logprobs: stories260k and llama2xs served by a Consort server on
/// loopback, fused remotely (top-20 each, renormalized over the union) and locally (full distributions).
/// </summary>
public sealed class EndpointFusionTests : IAsyncLifetime
{
    private ConsortModel _stories = null!, _xs = null!, _remoteStories = null!, _remoteXs = null!;
    private RunningServer _server = null!;

    public async Task InitializeAsync()
    {
        _stories = Consort.LlamaCpp.LlamaModelFactory.Load(new Consort.LlamaCpp.LlamaModelOptions { Path = TestPaths.Stories260K, Name = "stories260k", ContextSize = 512 });
        _xs = Consort.LlamaCpp.LlamaModelFactory.Load(new Consort.LlamaCpp.LlamaModelOptions { Path = TestPaths.Llama2Xs, Name = "llama2xs" });
        _server = await RunningServer.StartAsync([_stories, _xs], key: null);
        // Both endpoints declare one vocabulary name: their token strings share ids.
        string vocab = "fusion-" + Guid.NewGuid().ToString("N");
        ConsortModel Remote(string model) => OpenAIModelFactory.Create(new OpenAIModelOptions
        {
            Name = "remote-" + model, BaseUrl = _server.Url + "/v1", Model = model, TopLogprobs = 20, MaxRetries = 0,
            Timeout = TimeSpan.FromSeconds(60), Vocabulary = vocab, VocabularySize = 512,
        });
        _remoteStories = Remote("stories260k");
        _remoteXs = Remote("llama2xs");
    }

    public async Task DisposeAsync()
    {
        _remoteStories.Dispose(); _remoteXs.Dispose();
        await _server.DisposeAsync();
        _stories.Dispose(); _xs.Dispose();
    }

    [Fact]
    public async Task Fusing_served_models_gives_the_local_fusions_greedy_text_marked_approximate()
    {
        const string hp = """{"max_tokens": 16}""";
        using var local = await MethodHarness.CreateAsync(new LogitFusionMethod(), [_stories, _xs], hp, name: "local");
        using var remote = await MethodHarness.CreateAsync(new LogitFusionMethod(), [_remoteStories, _remoteXs], hp, name: "remote");
        Assert.Equal(ModelAccess.TopKLogprobs, remote.Descriptor.Access & ModelAccess.TopKLogprobs);
        var prompt = new[] { new ChatMessage(ChatRole.User, "Once upon a time") };
        var l = await local.Chat.GetResponseAsync(prompt);
        var r = await remote.Chat.GetResponseAsync(prompt);
        Assert.Equal(l.Text, r.Text);
        Assert.True(r.AdditionalProperties?[ConsortKeys.Approximate] is true, "the endpoint fusion is not marked approximate");
        Assert.False(l.AdditionalProperties?.ContainsKey(ConsortKeys.Approximate) ?? false);
        var combined = r.GetTrace().Single(e => e.Role == "combined");
        Assert.True(combined.Data!["approximate"] is true);
        Assert.True((int)combined.Data["approximate_steps"]! >= 1);
    }

    [Fact]
    public void A_method_that_needs_full_distributions_refuses_an_endpoint_naming_it_and_its_k()
    {
        var e = Assert.Throws<ConfigException>(() => MethodHarness.Plan(new LogitFusionMethod(), [_stories.Descriptor, _remoteXs.Descriptor], """{"align": "bytes"}"""));
        Assert.Contains("remote-llama2xs", e.Message);
        Assert.Contains("k = 20", e.Message);
        Assert.Contains("full logits", e.Message);
    }
}
