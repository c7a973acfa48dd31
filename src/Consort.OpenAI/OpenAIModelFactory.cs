using System.ClientModel;
using System.ClientModel.Primitives;
using Consort.Middleware;
using Microsoft.Extensions.AI;
using OpenAI;

namespace Consort.OpenAI;

/// <summary>Builds a <see cref="ConsortModel"/> for an OpenAI-compatible endpoint.</summary>
public static class OpenAIModelFactory
{
    /// <summary>
    /// Creates the model: chat through MEAI's OpenAI adapter over a resilient HttpClient, and (when
    /// <see cref="OpenAIModelOptions.TopLogprobs"/> &gt; 0) top-k token access through <c>/v1/completions</c>.
    /// Nothing is sent until the first call. A named <see cref="OpenAIModelOptions.ApiKeyEnv"/> that is unset is a
    /// <see cref="ConfigException"/>; the key's value is never logged.
    /// </summary>
    public static ConsortModel Create(OpenAIModelOptions o)
    {
        ArgumentNullException.ThrowIfNull(o);
        o.Validate();
        var descriptor = Describe(o);
        string? key = null;
        if (!string.IsNullOrEmpty(o.ApiKeyEnv))
        {
            key = Environment.GetEnvironmentVariable(o.ApiKeyEnv);
            if (string.IsNullOrEmpty(key))
                throw new ConfigException($"model '{o.Name}': environment variable '{o.ApiKeyEnv}' (its API key) is not set");
        }
        // The SDK insists on a credential; local servers without auth ignore this placeholder.
        string credential = key ?? "no-key";

        var vocab = o.TopLogprobs > 0 ? StringVocabulary.For(o.Vocabulary ?? o.Model, o.VocabularySize) : null;

        var http = ResilientHttp.CreateClient(o);
        var client = new OpenAIClient(new ApiKeyCredential(credential), new OpenAIClientOptions
        {
            Endpoint = new Uri(o.BaseUrl),
            Transport = new HttpClientPipelineTransport(http),
            RetryPolicy = new ClientRetryPolicy(0),
            // The resilience pipeline owns time; the SDK's own network timeout only backs it up.
            NetworkTimeout = o.EffectiveTotalTimeout + TimeSpan.FromSeconds(5),
        });
        IChatClient endpoint = new OpenAIChatClient(client.GetChatClient(o.Model).AsIChatClient(), o, descriptor);
        IChatClient chat = new ChatClientBuilder(endpoint).UseConsortCost(descriptor).Build();
        var tokens = vocab is null ? null : new EndpointTokenModel(descriptor, new CompletionsClient(http, o, credential), vocab, o.TopLogprobs);
        return new ConsortModel(descriptor, chat, tokens, owned: [chat, endpoint, http]);
    }

    /// <summary>What an endpoint model offers, from its options alone (nothing is sent).</summary>
    public static ModelDescriptor Describe(OpenAIModelOptions o) => new()
    {
        Name = o.Name,
        Access = ModelAccess.Text | (o.TopLogprobs > 0 ? ModelAccess.TopKLogprobs : ModelAccess.None),
        TopK = o.TopLogprobs > 0 ? o.TopLogprobs : null,
        Vocabulary = o.TopLogprobs > 0 ? StringVocabulary.IdentityFor(o.Vocabulary ?? o.Model, o.VocabularySize) : null,
        ContextSize = o.ContextSize,
        InputPricePerMillion = o.InputPricePerMillion,
        OutputPricePerMillion = o.OutputPricePerMillion,
        Identity = $"endpoint:{o.BaseUrl.TrimEnd('/')}#{o.Model}",
    };
}
