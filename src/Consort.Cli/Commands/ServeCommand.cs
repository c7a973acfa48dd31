using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Consort.Caching;
using Consort.Config;
using Consort.Evaluation;
using Consort.LlamaCpp;
using Consort.Methods;
using Consort.Server;
using Consort.Server.State;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;

namespace Consort.Cli.Commands;

/// <summary><c>consort serve CONFIG [--urls URL]</c>: serves a config's models and collaborations over an OpenAI-compatible API.</summary>
public sealed class ServeCommand : ICliCommand
{
    /// <inheritdoc />
    public Command Build()
    {
        var config = new Argument<string>("config") { Description = "Serve config: {\"models\": [...], \"collaborations\": {NAME: {method, models, hyperparameters}}, \"server\": {...}}" };
        var urls = new Option<string?>("--urls") { Description = "Listen URLs, e.g. http://127.0.0.1:8000 (overrides server.urls; default loopback only)" };
        var cmd = new Command("serve", "Serve models and collaborations over an OpenAI-compatible HTTP API (/v1/models, /v1/chat/completions, /v1/completions).");
        cmd.Arguments.Add(config);
        cmd.Options.Add(urls);
        cmd.SetAction(async (ParseResult pr, CancellationToken ct) =>
        {
            // The listen address is checked before any model loads.
            if (pr.GetValue(urls) is { } u) ServerOptions.ValidateUrls(u);
            await using var loaded = await ServeConfig.LoadAsync(pr.GetValue(config)!, pr.GetValue(urls), Console.Error.WriteLine, ct);
            var app = ConsortServer.Build(loaded.Options, loaded.Models, loaded.Embedders, loaded.Redis);
            try
            {
                await app.StartAsync(ct);
            }
            catch (IOException e)
            {
                await app.DisposeAsync();
                throw new ConsortException($"cannot listen on {loaded.Options.Urls}: {e.Message.TrimEnd('.')}", e);
            }
            Console.WriteLine($"serving {string.Join(", ", loaded.Models.Select(m => m.Name).Concat(loaded.Embedders.Keys).Distinct())} at {string.Join(", ", ConsortServer.BoundUrls(app))} (Ctrl+C or SIGTERM stops)");
            try
            {
                await app.WaitForShutdownAsync(ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
            // Stop drains: no new requests, in-flight ones get server.shutdown_timeout_s, the rest end with an error.
            await app.StopAsync(CancellationToken.None);
            await app.DisposeAsync();
            return 0;
        });
        return cmd;
    }
}

/// <summary>
/// A loaded serve config: server options plus built models (pool models first, then collaborations), which it owns.
/// Models are validated (files, capabilities, vocabularies) before any is loaded.
/// </summary>
public sealed class ServeConfig : IAsyncDisposable
{
    /// <summary>Top-level keys of a serve config.</summary>
    public static readonly string[] Keys = ["name", "description", "models", "collaborations", "server", "seed", "concurrency"];
    /// <summary>Keys that make a config a run config; served as well (its models and runs), the task is not run.</summary>
    private static readonly string[] RunKeys = ["task", "task_type", "method", "runs", "baselines", "hyperparameters", "model_names", "split", "limit", "gpu_ids"];
    private static readonly string[] CollaborationKeys = ["method", "models", "hyperparameters", .. GatewaySpec.Keys];

    private readonly ModelSession _session;
    private readonly List<IDisposable> _owned;
    private readonly IDisposable? _cache;

    private ServeConfig(ServerOptions options, IReadOnlyList<ConsortModel> models, IReadOnlyDictionary<string, IEmbeddingGenerator<string, Embedding<float>>> embedders,
        ModelSession session, List<IDisposable> owned, RedisState? redis, IDisposable? cache)
    {
        Options = options; Models = models; Embedders = embedders; _session = session; _owned = owned; Redis = redis; _cache = cache;
    }

    /// <summary>Shared state in Redis (server.redis), connected before the models were built: their call cache may live in it.</summary>
    public RedisState? Redis { get; }

    /// <summary>Server settings.</summary>
    public ServerOptions Options { get; }
    /// <summary>Models to serve.</summary>
    public IReadOnlyList<ConsortModel> Models { get; }
    /// <summary>Models that answer /v1/embeddings (server.embedding_models).</summary>
    public IReadOnlyDictionary<string, IEmbeddingGenerator<string, Embedding<float>>> Embedders { get; }

    /// <summary>Reads, validates and builds everything a serve config names.</summary>
    public static async Task<ServeConfig> LoadAsync(string path, string? urlsOverride, Action<string>? log, CancellationToken ct)
    {
        path = Path.GetFullPath(path);
        if (!File.Exists(path) && !Directory.Exists(path)) throw new ConfigException($"serve config not found: {path}");
        string where = Path.GetFileName(path);
        var obj = Consort.Formats.SafeJson.ParseNodeFile(path, Limits.MaxConfigBytes, "a serve config", Consort.Formats.SafeJson.Kind.Config) as JsonObject
                  ?? throw new ConfigException($"{where}: a serve config must be a JSON object");
        string baseDir = Path.GetDirectoryName(path)!;
        bool isRunConfig = obj.Any(kv => RunKeys.Contains(kv.Key));
        foreach (var (key, _) in obj)
            if (!Keys.Contains(key) && !(isRunConfig && RunConfig.Keys.Contains(key)))
                throw new ConfigException($"{where}: unknown key '{key}'; valid keys: {string.Join(", ", Keys)} (and a run config's keys)");

        var specs = new List<ModelSpec>();
        var byName = new Dictionary<string, ModelSpec>(StringComparer.Ordinal);
        void Add(ModelSpec s)
        {
            if (byName.TryGetValue(s.Name, out var known))
            {
                if (ReferenceEquals(known, s)) return;
                throw new ConfigException($"{where}: two models are named '{s.Name}'; give them distinct names");
            }
            byName[s.Name] = s;
            specs.Add(s);
        }
        RunConfig? runConfig = null;
        if (isRunConfig)
        {
            // A run config serves as it is: its pool and its runs (collaborations) become models; the task is not
            // evaluated, but its dev split is what methods that fit themselves fit on, as under consort run.
            var run = runConfig = RunConfig.Parse((JsonObject)obj.DeepClone(), baseDir, Path.GetFileNameWithoutExtension(path), path);
            var ignored = RunKeys.Where(k => obj.ContainsKey(k) && k is "split" or "limit" or "gpu_ids").ToList();
            if (ignored.Count > 0) log?.Invoke($"note: {where} is a run config; serve ignores {string.Join(", ", ignored.Select(k => $"'{k}'"))} and serves its models and runs");
            foreach (var m in run.Models) Add(m);
            foreach (var r in run.Runs) Add(r.Model);
        }
        else if (obj["models"] is JsonArray arr)
            for (int i = 0; i < arr.Count; i++) Add(ModelReferences.Parse(arr[i], baseDir, byName, $"{where}: models[{i}]"));
        else if (obj["models"] is not null) throw new ConfigException($"{where}: 'models' must be a list");
        if (obj["collaborations"] is JsonObject collabs)
        {
            foreach (var (name, node) in collabs)
            {
                string at = $"{where}: collaborations.{name}";
                if (node is not JsonObject c) throw new ConfigException($"{at}: must be an object {{\"method\", \"models\", \"hyperparameters\"}}");
                ModelReferences.CheckKeys(c, CollaborationKeys, name, at);
                if (c["method"] is not JsonValue mv || !mv.TryGetValue<string>(out _)) throw new ConfigException($"{at}: 'method' is required");
                if (c["models"] is not JsonArray members || members.Count == 0) throw new ConfigException($"{at}: 'models' must be a non-empty list");
                if (c["hyperparameters"] is { } h && h is not JsonObject) throw new ConfigException($"{at}: 'hyperparameters' must be an object, got {h.ToJsonString()}");
                var entry = (JsonObject)c.DeepClone();
                entry["name"] = name;
                Add(ModelReferences.Parse(entry, baseDir, byName, at));
            }
        }
        else if (obj["collaborations"] is not null) throw new ConfigException($"{where}: 'collaborations' must be an object of NAME: {{method, models, hyperparameters}}");
        if (specs.Count == 0) throw new ConfigException($"{where}: nothing to serve: give 'models' and/or 'collaborations'");
        GatewaySpec.ResolveAll(specs, byName, where);

        var options = ServerOptions.FromJson(obj["server"] as JsonObject ?? (obj["server"] is null ? null : throw new ConfigException($"{where}: 'server' must be an object")), baseDir, urlsOverride);
        var embedSpecs = new List<(string Name, GgufModelSpec Spec)>();
        foreach (var name in options.EmbeddingModels)
        {
            var spec = byName.GetValueOrDefault(name) ?? throw new ConfigException($"{where}: server.embedding_models: '{name}' is not a model of this config");
            if (spec is GatewaySpec { Deployments: [GgufModelSpec only] }) spec = only;
            if (spec is not GgufModelSpec g)
                throw new ConfigException($"{where}: server.embedding_models: '{name}' is not a local GGUF model (embeddings come from llama.cpp)");
            embedSpecs.Add((name, g));
        }
        int seed = RunConfig.Get<int?>(obj, "seed", where) ?? 42;
        IFitData? dev = null;
        if (runConfig?.Task is { } taskNode)
        {
            // Served before, the task was not read at all: a dataset this machine cannot load stays a note, not a failure
            // (only a method that needs the dev split then refuses, with its own error).
            string? unread = null;
            try
            {
                var task = EvalTask.Create(DatasetSearch.Normalize(taskNode), DatasetSearch.Folders(baseDir), seed).ForModels(RunPlan.AllBaseModels(specs, []));
                if (task.Dataset.SplitNames.Contains("dev")) dev = task.BuildFitData("dev");
            }
            catch (Exception e) when (e is ConsortException or IOException or InvalidDataException) { unread = e.Message; }
            log?.Invoke(unread is not null ? $"note: {where}: the task's dataset could not be read ({unread}); methods that fit on dev need their saved files or fixed settings"
                      : dev is null ? $"note: {where}: the task has no dev split; methods that fit on dev need their saved files or fixed settings"
                      : $"note: {where}: methods that fit on dev use the task's dev split ({dev.Examples.Count} examples); the task is not evaluated");
        }
        int concurrency = Limits.Check(RunConfig.Get<int?>(obj, "concurrency", where) ?? 4, 1, Limits.MaxConcurrency, "concurrency", where);
        RedisState? redis = null;
        SqliteDistributedCache? sqlite = null;
        var owned = new List<IDisposable>();
        ModelSession? session = null;
        try
        {
            // Redis is connected before any model loads: served models (and the members inside collaborations) cache
            // their deterministic calls in it, shared by every replica (server.cache: redis).
            if (options.Redis is { } connection) redis = RedisState.Connect(connection, options.RedisPrefix, NullLogger.Instance);
            if (options.Cache == "sqlite") sqlite = SqliteDistributedCache.OpenConfigured();
            IDistributedCache? cache = options.Cache switch { "redis" => redis!.Cache, "sqlite" => sqlite, _ => null };
            var decorator = new ModelDecorator { Cache = cache, Seed = seed };
            session = new ModelSession
            {
                BaseDirectory = baseDir,
                Unit = "collaboration",
                Dev = dev,
                Log = log,
                Seed = seed,
                MaxConcurrency = concurrency,
                Decorate = decorator.Decorate,
                Services = HostServices.Default,
            };
            foreach (var s in specs) session.Describe(s); // everything validated before anything loads
            await ModelSession.PrepareAsync(specs, log, ct);
            var models = new List<ConsortModel>();
            foreach (var s in specs) models.Add(await session.BuildAsync(s, ct));
            var embedders = new Dictionary<string, IEmbeddingGenerator<string, Embedding<float>>>(StringComparer.Ordinal);
            foreach (var (name, g) in embedSpecs)
            {
                var e = new LlamaEmbeddingGenerator(g.Path, name, g.Options["context_size"]?.GetValue<int>(), g.Options["threads"]?.GetValue<int>());
                owned.Add(e);
                embedders[name] = e;
            }
            return new ServeConfig(options, models, embedders, session, owned, redis, sqlite);
        }
        catch
        {
            foreach (var o in owned) o.Dispose();
            session?.Dispose();
            sqlite?.Dispose();
            redis?.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        foreach (var o in _owned) o.Dispose();
        _session.Dispose();
        _cache?.Dispose();
        Redis?.Dispose();
        return ValueTask.CompletedTask;
    }
}
