using Microsoft.Extensions.AI;

namespace Consort.Methods;

/// <summary>
/// Generation settings from a method's common hyperparameters. Settings given in the method's
/// config override the caller's (e.g. a task's defaults); settings not given leave the caller's alone.
/// </summary>
public sealed record GenerationSettings(int? MaxTokens, float? Temperature, float? TopP, int? TopK)
{
    /// <summary>Default output length when neither the method nor the caller sets one.</summary>
    public const int DefaultMaxTokens = 256;

    /// <summary>Reads the common hyperparameters (MoCo's "max_response_length" is accepted for "max_tokens").</summary>
    public static GenerationSettings From(Hyperparameters h) => new(
        h.Has("max_tokens") ? h.Get("max_tokens", DefaultMaxTokens) : h.Has("max_response_length") ? h.Get("max_response_length", DefaultMaxTokens) : null,
        h.Has("temperature") ? h.Get("temperature", 0f) : null,
        h.Has("top_p") ? h.Get("top_p", 1f) : null,
        h.Has("top_k") ? h.Get("top_k", 0) : null);

    /// <summary>Options for a member call: a copy of the caller's with the method's explicit settings applied.</summary>
    public ChatOptions Apply(ChatOptions? caller, int? seed = null)
    {
        var o = caller?.Clone() ?? new ChatOptions();
        o.MaxOutputTokens = MaxTokens ?? o.MaxOutputTokens ?? DefaultMaxTokens;
        o.Temperature = Temperature ?? o.Temperature;
        if (TopP is { } p) o.TopP = p;
        if (TopK is { } k) o.TopK = k > 0 ? k : null;
        if (seed is not null) o.Seed = seed;
        return o;
    }
}
