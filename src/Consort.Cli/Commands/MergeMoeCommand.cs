using System.CommandLine;
using Consort.Formats.Gguf;
using Consort.LlamaCpp;
using Consort.Weights.Moe;
using LLama;
using LLama.Common;
using LLama.Native;

namespace Consort.Cli.Commands;

/// <summary>
/// <c>consort merge-moe CONFIG.yml --out moe.gguf</c>: a Mixtral-style mixture of experts from dense LLaMA models
/// (mergekit-moe's YAML); hidden-state gates are computed by llama.cpp from the base model.
/// </summary>
public sealed class MergeMoeCommand : ICliCommand
{
    /// <inheritdoc />
    public Command Build()
    {
        var config = new Argument<string>("config") { Description = "mergekit-moe YAML (base_model, experts with positive_prompts, gate_mode, dtype, experts_per_token)" };
        var output = new Option<string>("--out", "-o") { Description = "the mixture, a .gguf file", Required = true };
        var seed = new Option<int>("--random-seed") { Description = "seed of random gates and expert noise", DefaultValueFactory = _ => 42 };
        var same = new Option<bool>("--i-understand-this-is-not-useful-without-training") { Description = "allow every expert to be the same model (for sparse upcycling)" };
        var cmd = new Command("merge-moe", "Build a Mixtral-style mixture of experts (GGUF) from dense LLaMA models (mergekit-moe).");
        cmd.Arguments.Add(config);
        foreach (var o in new Option[] { output, seed, same }) cmd.Options.Add(o);
        cmd.SetAction((ParseResult pr, CancellationToken ct) =>
        {
            var cfg = MoeConfig.Load(pr.GetValue(config)!, ModelArgument.Resolve);
            cfg.Validate(pr.GetValue(same));
            using var states = new LlamaHiddenStates();
            var r = MoeBuilder.Build(cfg, pr.GetValue(output)!, states, pr.GetValue(seed), new MergeCommand.Inline<string>(m => Console.WriteLine($"  {m}")), ct);
            Console.WriteLine($"wrote {r.Output}");
            Console.WriteLine($"  experts      {r.Experts} per layer, {cfg.ExpertsPerToken} per token, {r.Layers} layers, gates: {cfg.GateMode}");
            if (r.DegenerateLayers.Count > 0)
                Console.WriteLine($"  warning: layers {string.Join(", ", r.DegenerateLayers)} have nearly parallel gate vectors (prompts too similar): some experts will get little traffic");
            Console.WriteLine($"  seconds      {r.Seconds:F2}");
            return Task.FromResult(0);
        });
        return cmd;
    }
}

/// <summary>
/// Hidden states through llama.cpp's embeddings: for layer L a probe model (<see cref="ProbeModel"/>: the model cut
/// after layer L, the residual passed through, unit final norm) is written to tmpfs when there is one and loaded with
/// embeddings on; its pooled embedding (last token or mean) of a prompt is the RMS-normalized residual at the probe
/// point. Probes of a model are written once per layer and point and reused.
/// </summary>
public sealed class LlamaHiddenStates : IHiddenStateSource, IDisposable
{
    private readonly string _dir = Directory.CreateDirectory(Path.Combine(Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath(), $"consort-probe-{Environment.ProcessId}-{Guid.NewGuid():N}")).FullName;
    private readonly Dictionary<(string, int, ProbePoint), string> _probes = new();

    /// <summary>Threads llama.cpp uses.</summary>
    public int Threads { get; init; } = Math.Max(1, Environment.ProcessorCount);

    /// <inheritdoc />
    public float[][] HiddenStates(string model, IReadOnlyList<string> prompts, ProbePoint point, bool meanOverTokens, CancellationToken ct)
    {
        if (prompts.Count == 0) throw new ConfigException("no prompts to compute hidden states from");
        int layers;
        using (var f = GgufFile.Open(model)) layers = (int)(f.GetInt((f.Architecture ?? "llama") + ".block_count") ?? 0);
        var result = new float[layers][];
        for (int l = 0; l < layers; l++)
        {
            ct.ThrowIfCancellationRequested();
            result[l] = Embed(Probe(model, l, point), prompts, meanOverTokens);
        }
        return result;
    }

    /// <summary>The pooled embedding of each prompt under <paramref name="gguf"/>, averaged over the prompts.</summary>
    public float[] Embed(string gguf, IReadOnlyList<string> prompts, bool meanOverTokens) =>
        EmbedEach(gguf, prompts, meanOverTokens).Aggregate((a, b) => a.Zip(b, (x, y) => x + y).ToArray()).Select(x => x / prompts.Count).ToArray();

    private readonly Dictionary<(string, LLamaPoolingType), (LLamaWeights Weights, LLamaContext Context)> _loaded = new();

    private LLamaContext Context(string gguf, LLamaPoolingType pooling)
    {
        if (_loaded.TryGetValue((gguf, pooling), out var m)) return m.Context;
        LlamaNative.EnsureInitialized();
        var p = new ModelParams(gguf)
        {
            ContextSize = 512, BatchSize = 512, UBatchSize = 512, Threads = Threads, BatchThreads = Threads, GpuLayerCount = 0,
            Embeddings = true, PoolingType = pooling,
        };
        var weights = LLamaWeights.LoadFromFile(p);
        _loaded[(gguf, pooling)] = m = (weights, weights.CreateContext(p));
        return m.Context;
    }

    // Decodes a prompt (BOS first) and hands the context to read embeddings from; the sequence is cleared after.
    private T Decode<T>(LLamaContext ctx, string gguf, string prompt, Func<LLamaContext, int, T> read)
    {
        var tokens = ctx.Tokenize(prompt, true, false);
        if (tokens.Length > 512) throw new ConfigException($"prompt '{prompt[..Math.Min(40, prompt.Length)]}...' has {tokens.Length} tokens; at most 512");
        var batch = new LLamaBatch();
        for (int i = 0; i < tokens.Length; i++) batch.Add(tokens[i], i, LLamaSeqId.Zero, true);
        var rc = ctx.Decode(batch);
        if (rc != DecodeResult.Ok) throw new ConsortException($"{Path.GetFileName(gguf)}: llama.cpp could not decode a prompt ({rc})");
        try { return read(ctx, tokens.Length); }
        finally { ctx.NativeHandle.MemoryClear(); }
    }

    /// <summary>The pooled embedding of each prompt (BOS first) under <paramref name="gguf"/> (the model stays loaded for the next call).</summary>
    public List<float[]> EmbedEach(string gguf, IReadOnlyList<string> prompts, bool meanOverTokens)
    {
        var ctx = Context(gguf, meanOverTokens ? LLamaPoolingType.Mean : LLamaPoolingType.Last);
        return prompts.Select(p => Decode(ctx, gguf, p, (c, _) => c.NativeHandle.GetEmbeddingsSeq(LLamaSeqId.Zero).ToArray())).ToList();
    }

    /// <summary>The embedding of every token of <paramref name="prompt"/> (BOS first) under <paramref name="gguf"/>.</summary>
    public List<float[]> EmbedTokens(string gguf, string prompt) =>
        Decode(Context(gguf, LLamaPoolingType.None), gguf, prompt, (c, n) => Enumerable.Range(0, n).Select(i => c.NativeHandle.GetEmbeddingsIth(i).ToArray()).ToList());

    /// <summary>The probe model of <paramref name="model"/> at layer <paramref name="layer"/> (written once).</summary>
    public string Probe(string model, int layer, ProbePoint point)
    {
        if (_probes.TryGetValue((model, layer, point), out var path)) return path;
        path = Path.Combine(_dir, $"{_probes.Count}-{layer}-{point}.gguf");
        ProbeModel.Write(model, layer, point, path);
        return _probes[(model, layer, point)] = path;
    }

    /// <inheritdoc />
    public int[] Tokenize(string model, string text)
    {
        LlamaNative.EnsureInitialized();
        var p = new ModelParams(model) { GpuLayerCount = 0, VocabOnly = true };
        using var weights = LLamaWeights.LoadFromFile(p);
        return weights.Tokenize(text, true, false, System.Text.Encoding.UTF8).Select(t => (int)t).ToArray();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var (w, c) in _loaded.Values) { c.Dispose(); w.Dispose(); }
        _loaded.Clear();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }
}
