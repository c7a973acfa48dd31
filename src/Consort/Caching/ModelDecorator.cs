using Consort.Config;
using Consort.Telemetry;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Caching.Distributed;

namespace Consort.Caching;

/// <summary>
/// What a run puts around every model it builds (<see cref="ModelSession.Decorate"/>): the model's identity on its
/// descriptor, the call cache when one is given, and a telemetry span per collaboration call. Members of a
/// collaboration are built through the same session, so its inner calls hit the cache too.
/// </summary>
public sealed class ModelDecorator
{
    /// <summary>The store; null: no caching.</summary>
    public IDistributedCache? Cache { get; init; }
    /// <summary>Seed of the run (collaborations fit and sample with it).</summary>
    public int Seed { get; init; } = 42;
    /// <summary>Fingerprint of the dev data collaborations fit on.</summary>
    public string? DevFingerprint { get; init; }

    /// <summary>The decorated model (it owns <paramref name="model"/>).</summary>
    public ConsortModel Decorate(ModelSpec spec, ConsortModel model)
    {
        string identity = ModelIdentity.Of(spec, Seed, DevFingerprint);
        var descriptor = model.Descriptor with { Identity = identity };
        var builder = new ChatClientBuilder(model.Chat);
        if (model.Method is not null) builder.UseConsortTelemetry(descriptor, model.Method);
        if (Cache is not null) builder.UseConsortCache(Cache, identity, new ConsortCacheOptions { UnsetTemperatureIsGreedy = spec is GgufModelSpec });
        return new ConsortModel(descriptor, builder.Build(), model.Tokens, model.Members, model.Method, model);
    }
}
