using System.Text.Json.Nodes;

namespace Consort.Methods;

/// <summary>The shape of an <c>embedding</c> hyperparameter, checked before any work (what it names is resolved by the host).</summary>
public static class EmbeddingSpec
{
    /// <summary>The default: the offline MiniLM model.</summary>
    public const string MiniLm = "minilm";

    /// <summary>Throws when <paramref name="spec"/> is neither a non-empty string nor an object with <c>base_url</c> and <c>model</c>, or <c>path</c>.</summary>
    public static void Check(JsonNode? spec, MethodPlan plan, string key)
    {
        switch (spec)
        {
            case null: return;
            case JsonValue v when v.TryGetValue<string>(out var s) && s.Length > 0: return;
            case JsonObject o when o["base_url"] is not null && o["model"] is not null: return;
            case JsonObject o when o["path"] is not null: return;
            default:
                throw plan.Error(key, $"must be \"minilm\", a GGUF model (path, zoo:NAME, hf:...), or an endpoint {{\"base_url\": ..., \"model\": ...}}; got {Limits.ForMessage(spec.ToJsonString())}");
        }
    }

    /// <summary>The host's embedding sources, or an error naming the method.</summary>
    public static IEmbeddingSources Sources(MethodContext context, string method) =>
        context.GetService<IEmbeddingSources>() ?? throw new ConsortException($"method '{method}' needs embeddings, and this host offers none");
}
