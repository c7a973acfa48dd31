using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Consort.Config;
using Consort.Server;
using Microsoft.Extensions.Hosting;

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
            await using var loaded = await ServeConfig.LoadAsync(pr.GetValue(config)!, pr.GetValue(urls), Console.Error.WriteLine, ct);
            var app = ConsortServer.Build(loaded.Options, loaded.Models);
            await app.StartAsync(ct);
            Console.WriteLine($"serving {string.Join(", ", loaded.Models.Select(m => m.Name))} at {string.Join(", ", ConsortServer.BoundUrls(app))} (Ctrl+C stops)");
            try
            {
                await app.WaitForShutdownAsync(ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
            using var stopCts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await app.StopAsync(stopCts.Token);
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
    private static readonly string[] CollaborationKeys = ["method", "models", "hyperparameters"];

    private readonly ModelSession _session;

    private ServeConfig(ServerOptions options, IReadOnlyList<ConsortModel> models, ModelSession session)
    {
        Options = options; Models = models; _session = session;
    }

    /// <summary>Server settings.</summary>
    public ServerOptions Options { get; }
    /// <summary>Models to serve.</summary>
    public IReadOnlyList<ConsortModel> Models { get; }

    /// <summary>Reads, validates and builds everything a serve config names.</summary>
    public static async Task<ServeConfig> LoadAsync(string path, string? urlsOverride, Action<string>? log, CancellationToken ct)
    {
        path = Path.GetFullPath(path);
        if (!File.Exists(path) && !Directory.Exists(path)) throw new ConfigException($"serve config not found: {path}");
        string where = Path.GetFileName(path);
        var obj = Consort.Formats.SafeJson.ParseNodeFile(path, Limits.MaxConfigBytes, "a serve config", Consort.Formats.SafeJson.Kind.Config) as JsonObject
                  ?? throw new ConfigException($"{where}: a serve config must be a JSON object");
        foreach (var (key, _) in obj)
            if (!Keys.Contains(key)) throw new ConfigException($"{where}: unknown key '{key}'; valid keys: {string.Join(", ", Keys)}");
        string baseDir = Path.GetDirectoryName(path)!;

        var specs = new List<ModelSpec>();
        var byName = new Dictionary<string, ModelSpec>(StringComparer.Ordinal);
        void Add(ModelSpec s)
        {
            if (!byName.TryAdd(s.Name, s)) throw new ConfigException($"{where}: two models are named '{s.Name}'; give them distinct names");
            specs.Add(s);
        }
        if (obj["models"] is JsonArray arr)
            for (int i = 0; i < arr.Count; i++) Add(ModelReferences.Parse(arr[i], baseDir, byName, $"{where}: models[{i}]"));
        else if (obj["models"] is not null) throw new ConfigException($"{where}: 'models' must be a list");
        if (obj["collaborations"] is JsonObject collabs)
        {
            foreach (var (name, node) in collabs)
            {
                string at = $"{where}: collaborations.{name}";
                if (node is not JsonObject c) throw new ConfigException($"{at}: must be an object {{\"method\", \"models\", \"hyperparameters\"}}");
                ModelReferences.CheckKeys(c, CollaborationKeys, name, at);
                string method = c["method"] is JsonValue mv && mv.TryGetValue<string>(out var m) ? m : throw new ConfigException($"{at}: 'method' is required");
                if (c["models"] is not JsonArray members || members.Count == 0) throw new ConfigException($"{at}: 'models' must be a non-empty list");
                var hp = c["hyperparameters"] switch
                {
                    null => new JsonObject(),
                    JsonObject h => (JsonObject)h.DeepClone(),
                    var other => throw new ConfigException($"{at}: 'hyperparameters' must be an object, got {other.ToJsonString()}"),
                };
                Add(new CollaborationSpec(name, method, [.. members.Select((x, i) => ModelReferences.Parse(x, baseDir, byName, $"{at}.models[{i}]"))], hp));
            }
        }
        else if (obj["collaborations"] is not null) throw new ConfigException($"{where}: 'collaborations' must be an object of NAME: {{method, models, hyperparameters}}");
        if (specs.Count == 0) throw new ConfigException($"{where}: nothing to serve: give 'models' and/or 'collaborations'");

        var options = ServerOptions.FromJson(obj["server"] as JsonObject ?? (obj["server"] is null ? null : throw new ConfigException($"{where}: 'server' must be an object")), baseDir, urlsOverride);
        var session = new ModelSession
        {
            BaseDirectory = baseDir,
            Log = log,
            Seed = RunConfig.Get<int?>(obj, "seed", where) ?? 42,
            MaxConcurrency = Limits.Check(RunConfig.Get<int?>(obj, "concurrency", where) ?? 4, 1, Limits.MaxConcurrency, "concurrency", where),
        };
        try
        {
            foreach (var s in specs) session.Describe(s); // everything validated before anything loads
            await ModelSession.PrepareAsync(specs, log, ct);
            var models = new List<ConsortModel>();
            foreach (var s in specs) models.Add(await session.BuildAsync(s, ct));
            return new ServeConfig(options, models, session);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    public ValueTask DisposeAsync()
    {
        _session.Dispose();
        return ValueTask.CompletedTask;
    }
}
