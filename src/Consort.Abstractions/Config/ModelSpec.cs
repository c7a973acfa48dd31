using System.Text.Json.Nodes;

namespace Consort.Config;

/// <summary>
/// A model as a config names it, before anything is loaded: a GGUF file (path, <c>hf:</c> or
/// <c>zoo:</c> reference), an OpenAI-compatible endpoint, or a nested collaboration.
/// <see cref="IModelProvider.Describe"/> reads what it offers cheaply, so configs are validated before work starts.
/// </summary>
public abstract record ModelSpec(string Name);

/// <summary>A local GGUF model run through llama.cpp.</summary>
/// <param name="Name">Name in results.</param>
/// <param name="Reference">As written in the config (path, hf:..., zoo:...).</param>
/// <param name="Path">Resolved file path (for hf: references, the cache path; it may not exist yet).</param>
/// <param name="Options">Extra settings (context_size, threads, max_sequences, seed, lora).</param>
public sealed record GgufModelSpec(string Name, string Reference, string Path, JsonObject Options) : ModelSpec(Name);

/// <summary>A model behind an OpenAI-compatible endpoint.</summary>
/// <param name="Name">Name in results.</param>
/// <param name="Entry">The config entry (validated by the OpenAI backend).</param>
public sealed record EndpointModelSpec(string Name, JsonObject Entry) : ModelSpec(Name);

/// <summary>A collaboration used as a model (e.g. a cascade inside a mixture).</summary>
/// <param name="Name">Name in results.</param>
/// <param name="Method">Method name.</param>
/// <param name="Members">Its models.</param>
/// <param name="Hyperparameters">Its hyperparameters.</param>
public sealed record CollaborationSpec(string Name, string Method, IReadOnlyList<ModelSpec> Members, JsonObject Hyperparameters) : ModelSpec(Name);
