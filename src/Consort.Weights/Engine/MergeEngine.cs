using System.Diagnostics;
using Consort.Formats;
using Consort.Formats.Gguf;
using Consort.Formats.Safetensors;
using Consort.Weights.Config;
using Consort.Weights.Methods;
using Consort.Weights.Tokenizer;

namespace Consort.Weights.Engine;

/// <summary>What a merge did.</summary>
/// <param name="Output">Output path.</param>
/// <param name="Tensors">Tensors written.</param>
/// <param name="BytesRead">Input bytes decoded (every pass counted).</param>
/// <param name="BytesWritten">Output size.</param>
/// <param name="Seconds">Wall time.</param>
/// <param name="PeakMemoryBytes">Peak resident memory of the process (VmHWM), or -1 when unknown.</param>
public sealed record MergeResult(string Output, int Tensors, long BytesRead, long BytesWritten, double Seconds, long PeakMemoryBytes)
{
    /// <summary>Of <see cref="Seconds"/>, the time spent completing the output (final flush to disk and rename).</summary>
    public double CommitSeconds { get; init; }
    /// <summary>What the config asked that the merge did not use (parameters of other methods), one line each.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];
}

/// <summary>Progress of a running merge.</summary>
/// <param name="Tensor">Tensor just finished.</param>
/// <param name="Done">Tensors done.</param>
/// <param name="Total">Tensors in all.</param>
/// <param name="BytesDone">Output bytes written so far.</param>
/// <param name="BytesTotal">Output bytes expected.</param>
public readonly record struct MergeProgress(string Tensor, int Done, int Total, long BytesDone, long BytesTotal);

/// <summary>
/// The streaming merge engine: validates the inputs (tensor sets, shapes, vocabularies) before any work, then for
/// each output tensor reads the matching input tensors chunk by chunk from memory-mapped files, runs the method and
/// streams the result into the output, which is written under a temporary name and renamed when complete.
/// </summary>
public static class MergeEngine
{
    /// <summary>Default elements per chunk (4 MB of F32 per buffer).</summary>
    public const int DefaultChunk = 1 << 20;

    /// <summary>
    /// Default budget for holding one tensor's decoded inputs in memory (F32, all inputs together): tensors within it
    /// are decoded once and merged in parallel; larger ones are streamed in chunks.
    /// </summary>
    public const long DefaultMemoryBudget = 96L << 20;

    /// <summary>Runs <paramref name="config"/> into <paramref name="output"/> (.gguf file or safetensors folder).</summary>
    /// <param name="config">The merge.</param>
    /// <param name="output">.gguf file or safetensors folder.</param>
    /// <param name="progress">Per-tensor progress.</param>
    /// <param name="ct">Cancellation.</param>
    /// <param name="chunkElements">Elements per chunk (streaming reads, and work items of in-memory tensors).</param>
    /// <param name="memoryBudgetBytes">Largest decoded size (F32, all inputs) of a tensor held in memory; 0 streams every tensor.</param>
    /// <param name="parallelism">Worker threads for in-memory tensors (default: processor count).</param>
    public static MergeResult Run(MergeConfig config, string output, IProgress<MergeProgress>? progress = null,
        CancellationToken ct = default, int chunkElements = DefaultChunk, long memoryBudgetBytes = DefaultMemoryBudget, int parallelism = 0)
    {
        if (parallelism <= 0) parallelism = Environment.ProcessorCount;
        var sw = Stopwatch.StartNew();
        var method = MergeMethodRegistry.Get(config.MergeMethod);
        var warnings = Validate(config);
        output = Path.GetFullPath(output);
        var paths = config.AllPaths;
        if (paths.Contains(output)) throw new ConsortException($"{output}: the output would overwrite an input");

        var sources = new ITensorSource[paths.Count];
        try
        {
            for (int i = 0; i < paths.Count; i++) sources[i] = TensorSources.Open(paths[i]);
            int baseSource = config.BaseModel is null ? -1 : 0;
            CheckArchitectures(sources, config.AllowCrimes);
            var vocabulary = config.Tokenizer is null ? null : TokenizerPlan.Build(config, paths, sources);
            CheckCompatible(sources, sameTensors: config.Slices is null, vocabularyMayDiffer: vocabulary is not null);
            var template = sources[config.BaseModel is not null ? 0 : paths.ToList().IndexOf(config.Slices?[0].Sources[0].Path ?? config.Models[0].Path)];
            GgmlType? outType = config.OutDtype is null ? null : SafetensorsDType.ParseUser(config.OutDtype);
            int layers = TensorNames.LayerCount(template.Tensors.Select(t => t.Name));
            var chatTemplate = ChatTemplates.Resolve(config.ChatTemplate, sources.Select(ChatTemplateOf));

            using var sink = MergeOutput.Create(output, template, config.Name ?? Path.GetFileNameWithoutExtension(output), new MergeOutputOptions(config.OutShardSize));
            if (vocabulary is not null) sink.SetVocabulary(vocabulary);
            if (chatTemplate is not null) sink.SetChatTemplate(chatTemplate);
            List<PlannedTensor> plan;
            if (config.Slices is null)
            {
                int[] modelSource = config.Models.Select(m => paths.ToList().IndexOf(m.Path)).ToArray();
                bool embedSlerp = vocabulary is not null && config.Parameters.GetValueOrDefault("embed_slerp")?.Resolve("", 1) is true or 1.0;
                plan = template.Tensors.Select(t =>
                {
                    var entries = sources.Select(s => s.Find(t.Name)!).ToArray();
                    if (vocabulary is null || !Vocabulary.IsVocabularyTensor(t.Name))
                        return new PlannedTensor(t, OutputType(t, outType, sink), sources, entries, baseSource, modelSource, config, t.Name, layers);
                    // Token rows in the output vocabulary: every input seen through its row map.
                    var remapped = t with { Shape = [vocabulary.Rows, .. t.Shape[1..]] };
                    return new PlannedTensor(remapped, OutputType(remapped, outType, sink), sources, entries, baseSource, modelSource, config, t.Name, layers)
                    {
                        Remaps = sources.Select((_, i) => (RowRemap?)vocabulary.Remap(i)).ToArray(),
                        Override = embedSlerp ? job => EmbedSlerp.Merge(job, vocabulary, job.Global("t", 0.5)) : null,
                    };
                }).ToList();
            }
            else
            {
                plan = PlanSlices(config, template, sources, paths, t => OutputType(t, outType, sink));
                sink.SetLayerCount(config.Slices.Sum(x => x.Length));
            }
            foreach (var p in plan) sink.Declare(p.Tensor.Name, p.Tensor.Shape, p.Type);
            var mostly = plan.GroupBy(p => p.Type).OrderByDescending(g => g.Sum(p => p.Tensor.ElementCount)).First().Key;
            sink.SetFileType(mostly);

            long total = plan.Sum(p => GgmlTypes.ByteSize(p.Type, p.Tensor.ElementCount)), written = 0, read = 0;
            int chunk = Math.Max(32, chunkElements / 32 * 32);
            var buffers = new List<float[]>();
            var whole = new List<float[]>();
            byte[] encoded = new byte[GgmlTypes.ByteSize(GgmlType.F32, chunk)];
            // Whole encoded tensors alternate between two buffers: one is being written by the background writer
            // while the next tensor is computed into the other (at most one write in flight, so memory is bounded).
            var outBuffers = new byte[2][];
            Task pendingWrite = Task.CompletedTask, populating = Task.CompletedTask;
            // Merged in memory: its decoded inputs fit the budget and its encoded output one array.
            bool InMemory(PlannedTensor p) => memoryBudgetBytes > 0 && (double)p.Sources.Length * p.Tensor.ElementCount * 4 <= memoryBudgetBytes
                && GgmlTypes.ByteSize(p.Type, p.Tensor.ElementCount) < int.MaxValue && p.Tensor.ElementCount < int.MaxValue / 2;
            try
            {
                for (int ti = 0; ti < plan.Count; ti++)
                {
                    ct.ThrowIfCancellationRequested();
                    var item = plan[ti];
                    var (t, type, entries) = (item.Tensor, item.Type, item.Entries);
                    var populated = populating;
                    if (ti + 1 < plan.Count)
                    {
                        var next = plan[ti + 1];
                        for (int i = 0; i < next.Sources.Length; i++) MappedPages.Prefetch(next.Sources[i], next.Entries[i]);
                        // The next tensor's pages mapped while this one computes (only for tensors merged in memory:
                        // their inputs are resident for their merge anyway; a streamed one would grow the resident set).
                        populating = InMemory(next) && next.Remaps is null
                            ? Task.Run(() => { for (int i = 0; i < next.Sources.Length; i++) MappedPages.Populate(next.Sources[i], next.Entries[i]); }, CancellationToken.None)
                            : Task.CompletedTask;
                    }
                    long emitted = 0;
                    long outBytes = GgmlTypes.ByteSize(type, t.ElementCount);
                    bool inMemory = InMemory(item);
                    TensorJob job;
                    if (inMemory)
                    {
                        var buf = outBuffers[ti % 2];
                        if (buf is null || buf.Length < outBytes) outBuffers[ti % 2] = buf = new byte[outBytes];
                        int block = GgmlTypes.BlockSize(type);
                        void EncodeAt(long start, ReadOnlySpan<float> span)
                        {
                            if (start % block != 0 || (span.Length % block != 0 && start + span.Length != t.ElementCount))
                                throw new InvalidOperationException("output chunk splits a quantization block");
                            TensorCodec.Encode(type, span, buf.AsSpan((int)GgmlTypes.ByteSize(type, start), (int)GgmlTypes.ByteSize(type, span.Length)));
                        }
                        job = new TensorJob(t.Name, t.ElementCount, item.Sources, entries, item.BaseSource, item.ModelSource, item.Config, item.ParameterLayers, chunk, buffers,
                            span => { EncodeAt(emitted, span); emitted += span.Length; }, whole, parallelism, EncodeAt, item.ParameterName, item.Remaps);
                    }
                    else
                    {
                        pendingWrite.GetAwaiter().GetResult();
                        job = new TensorJob(t.Name, t.ElementCount, item.Sources, entries, item.BaseSource, item.ModelSource, item.Config, item.ParameterLayers, chunk, buffers, span =>
                        {
                            if (span.Length % GgmlTypes.BlockSize(type) != 0 && emitted + span.Length != t.ElementCount)
                                throw new InvalidOperationException("output chunk splits a quantization block");
                            int bytes = (int)GgmlTypes.ByteSize(type, span.Length);
                            if (encoded.Length < bytes) encoded = new byte[bytes]; // block passes emit whole blocks (a few chunks at most)
                            TensorCodec.Encode(type, span, encoded.AsSpan(0, bytes));
                            sink.Write(t.Name, encoded.AsSpan(0, bytes));
                            emitted += span.Length;
                        }, parameterName: item.ParameterName, remaps: item.Remaps);
                    }
                    try
                    {
                        if (item.Override is { } merge) merge(job);
                        else method.Merge(job);
                    }
                    catch (AggregateException ae) when (ae.Flatten().InnerExceptions.Count > 0)
                    {
                        // Parallel parts of in-memory tensors: surface the first real error (e.g. a ModelFileException).
                        System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(ae.Flatten().InnerExceptions[0]).Throw();
                    }
                    populated.GetAwaiter().GetResult(); // never drop pages a populate is still mapping
                    job.ReleaseInputs();
                    if (job.EmittedAt > 0) emitted += job.EmittedAt;
                    if (emitted != t.ElementCount) throw new InvalidOperationException($"merge method '{method.Name}' emitted {emitted} of {t.ElementCount} elements of '{t.Name}'");
                    if (inMemory)
                    {
                        pendingWrite.GetAwaiter().GetResult();
                        var buf = outBuffers[ti % 2]; string name = t.Name;
                        pendingWrite = Task.Run(() => sink.Write(name, buf.AsSpan(0, (int)outBytes)), CancellationToken.None);
                    }
                    read += job.BytesRead;
                    written += outBytes;
                    progress?.Report(new MergeProgress(t.Name, ti + 1, plan.Count, written, total));
                }
                pendingWrite.GetAwaiter().GetResult();
            }
            finally
            {
                // Never dispose the sink under a write still in flight (after an error or cancellation).
                try { pendingWrite.Wait(); } catch (AggregateException) { }
                try { populating.Wait(); } catch (AggregateException) { } // nor unmap inputs under a populate
            }
            var commit = Stopwatch.StartNew();
            sink.Commit();
            double commitSeconds = commit.Elapsed.TotalSeconds;
            long size = File.Exists(output) ? new FileInfo(output).Length : Directory.GetFiles(output).Sum(f => new FileInfo(f).Length);
            return new MergeResult(output, plan.Count, read, size, sw.Elapsed.TotalSeconds, PeakResident()) { CommitSeconds = commitSeconds, Warnings = warnings };
        }
        finally
        {
            foreach (var s in sources) s?.Dispose();
        }
    }

    private static GgmlType OutputType(TensorEntry t, GgmlType? requested, MergeOutput sink)
    {
        // llama.cpp wants 1-D tensors (norms) in F32; quantized inputs are written as F16 unless asked otherwise
        // (re-quantizing merged weights is a separate step).
        if (MergeOutput.IsGgufSink(sink) && t.Shape.Length < 2) return GgmlType.F32;
        var type = requested ?? (t.Type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 ? t.Type : GgmlType.F16);
        if (type == GgmlType.Q8_0 && (t.Shape[^1] % 32 != 0 || !MergeOutput.IsGgufSink(sink))) type = GgmlType.F16;
        return type;
    }

    /// <summary>Checks a config against its method before any file is opened: base model, model counts, parameter names.</summary>
    /// <returns>Warnings: parameters that other methods take but this one does not use (mergekit ignores them too).</returns>
    public static IReadOnlyList<string> Validate(MergeConfig c)
    {
        var warnings = new List<string>();
        CheckModelCounts(c, MergeMethodRegistry.Get(c.MergeMethod), warnings);
        return warnings.Distinct().ToList();
    }

    // Names some merge method takes: mergekit silently ignores a parameter the chosen method does not read (its
    // configs often give every model a weight), so those are accepted with a warning; other names are typos.
    private static readonly Lazy<HashSet<string>> AnyMethodParameter = new(() =>
        MergeMethodRegistry.Names.SelectMany(n => MergeMethodRegistry.Get(n).Parameters.Select(p => p.Name)).ToHashSet());

    private static void CheckModelCounts(MergeConfig c, IMergeMethod m, List<string>? warnings = null)
    {
        warnings ??= [];
        ChatTemplates.Validate(c.ChatTemplate);
        if (c.Tokenizer is not null && c.Slices is not null) throw new ConfigException("a tokenizer merge (tokenizer / tokenizer_source) works on 'models' configs; it is not supported with 'slices'");
        if (c.Tokenizer is not null && c.Parameters.GetValueOrDefault("embed_slerp")?.Values().Any(v => v is true or 1.0) == true
            && (c.BaseModel is null || c.Models.Count(x => x.Path != c.BaseModel) != 1))
            throw new ConfigException("embed_slerp interpolates the token rows of two models: give base_model and one other model");
        if (c.Slices is { } slices)
        {
            for (int i = 0; i < slices.Count; i++)
            {
                if (c.BaseModel is not null && !slices[i].Sources.Any(x => x.Path == c.BaseModel))
                    throw new ConfigException($"slices[{i}]: base_model {Path.GetFileName(c.BaseModel)} must be one of the slice's sources (its layers there are the base)");
                try { CheckModelCounts(c.ForSlice(i), m, warnings); }
                catch (ConfigException e) { throw new ConfigException($"slices[{i}]: {e.Message}", e); }
            }
            return;
        }
        if (m.RequiresBase && c.BaseModel is null) throw new ConfigException($"merge_method '{m.Name}' needs base_model");
        int others = c.Models.Count(x => x.Path != c.BaseModel);
        bool besidesBase = m.RequiresBase || (m.OptionalBase && c.BaseModel is not null);
        int count = besidesBase ? others : c.Models.Count;
        if (count < m.MinModels) throw new ConfigException($"merge_method '{m.Name}' needs at least {m.MinModels} model(s){(besidesBase ? " besides base_model" : "")}, got {count}");
        if (count > m.MaxModels) throw new ConfigException($"merge_method '{m.Name}' takes at most {m.MaxModels} model(s){(besidesBase ? " besides base_model" : "")}, got {count}");
        var specs = m.Parameters.ToDictionary(p => p.Name);
        var extra = TokenizerParameters(c);
        string Known() => string.Join(", ", specs.Keys.Concat(extra.Keys));
        foreach (var (k, v) in c.Parameters)
        {
            var spec = specs.GetValueOrDefault(k) ?? extra.GetValueOrDefault(k);
            if (spec is null && AnyMethodParameter.Value.Contains(k)) { warnings.Add($"merge_method '{m.Name}' does not use parameter '{k}' (ignored)"); continue; }
            if (spec is null) throw new ConfigException($"merge_method '{m.Name}' has no parameter '{k}' (it takes: {Known()})");
            CheckRange(m, spec, k, v, "");
        }
        foreach (var model in c.Models)
            foreach (var (k, v) in model.Parameters)
            {
                var spec = specs.GetValueOrDefault(k);
                if (spec is null && AnyMethodParameter.Value.Contains(k)) { warnings.Add($"merge_method '{m.Name}' does not use parameter '{k}' (ignored)"); continue; }
                if (spec is null) throw new ConfigException($"merge_method '{m.Name}': model '{Path.GetFileName(model.Path)}' has unknown parameter '{k}' (it takes: {string.Join(", ", specs.Keys)})");
                CheckRange(m, spec, k, v, $"model '{Path.GetFileName(model.Path)}': ");
            }
        foreach (var spec in specs.Values.Where(s => s.Default is null && s.PerModel))
            foreach (var model in c.Models.Where(x => x.Path != c.BaseModel || !besidesBase))
                if (!model.Parameters.ContainsKey(spec.Name) && !c.Parameters.ContainsKey(spec.Name))
                    throw new ConfigException($"merge_method '{m.Name}': model '{Path.GetFileName(model.Path)}' needs parameter '{spec.Name}'");
        foreach (var spec in specs.Values.Where(s => s.Default is null && !s.PerModel))
            if (!c.Parameters.ContainsKey(spec.Name)) throw new ConfigException($"merge_method '{m.Name}' needs parameter '{spec.Name}' ({spec.RangeText})");
        m.Validate(c);
    }

    // Every value a parameter can take (scalars, gradient anchors, filtered values) must be in the method's range.
    private static void CheckRange(IMergeMethod m, MergeParameterSpec spec, string key, MergeParameter value, string owner)
    {
        foreach (var v in value.Values())
            if (spec.Check(v) is string why)
                throw new ConfigException($"merge_method '{m.Name}': {owner}parameter '{key}' is {Show(v)}; it {why}");
    }

    private static string Show(object v) => v switch
    {
        double d => d.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        bool b => b ? "true" : "false",
        _ => v.ToString() ?? "",
    };

    /// <summary>Global parameters the tokenizer step adds to every method (mergekit's legacy embed_slerp and its t).</summary>
    private static Dictionary<string, MergeParameterSpec> TokenizerParameters(MergeConfig c) =>
        c.Tokenizer is null ? [] : new() { ["embed_slerp"] = new("embed_slerp", false, false), ["t"] = new("t", 0.5, false) { Min = 0, Max = 1 } };

    /// <summary>
    /// Checks before any work: same format, same tensor names, same shapes, same vocabulary. Every problem found is
    /// reported in one message.
    /// </summary>
    public static void CheckCompatible(IReadOnlyList<ITensorSource> sources, bool sameTensors = true, bool vocabularyMayDiffer = false)
    {
        var first = sources[0];
        var problems = new List<string>();
        string N(ITensorSource s) => Path.GetFileName(s.Path);
        foreach (var s in sources.Skip(1))
        {
            if (s.Format != first.Format) { problems.Add($"{N(s)} is {s.Format} but {N(first)} is {first.Format}"); continue; }
            if (!sameTensors) goto vocabulary; // slices map tensors layer by layer and check them as they plan
            var missing = first.Tensors.Where(t => s.Find(t.Name) is null).Select(t => t.Name).ToList();
            var extra = s.Tensors.Where(t => first.Find(t.Name) is null).Select(t => t.Name).ToList();
            if (missing.Count > 0) problems.Add($"{N(s)} lacks {missing.Count} tensor(s): {string.Join(", ", missing.Take(8))}{(missing.Count > 8 ? ", ..." : "")}");
            if (extra.Count > 0) problems.Add($"{N(s)} has {extra.Count} tensor(s) {N(first)} lacks: {string.Join(", ", extra.Take(8))}{(extra.Count > 8 ? ", ..." : "")}");
            foreach (var t in first.Tensors)
                if (s.Find(t.Name) is { } o && !o.SameShape(t)
                    && !(vocabularyMayDiffer && Vocabulary.IsVocabularyTensor(t.Name) && o.Shape.AsSpan(1).SequenceEqual(t.Shape.AsSpan(1))))
                    problems.Add($"{t.Name} is {t.ShapeText} in {N(first)} but {o.ShapeText} in {N(s)}");
            vocabulary:
            if (!vocabularyMayDiffer && first is GgufTensorSource g1 && s is GgufTensorSource g2 && g1.File.Vocabulary is { } v1 && g2.File.Vocabulary is { } v2 && v1 != v2)
                problems.Add($"{N(s)} has a different vocabulary from {N(first)} ({g2.File.Tokens?.Length} vs {g1.File.Tokens?.Length} tokens, different token texts)");
        }
        if (problems.Count > 0)
            throw new ModelFileException(sources[0].Path, "these models cannot be merged: " + string.Join("; ", problems.Take(24)) + (problems.Count > 24 ? $"; and {problems.Count - 24} more" : ""));
    }

    /// <summary>One output tensor of the plan: where its inputs come from and which config resolves its parameters.</summary>
    private sealed record PlannedTensor(TensorEntry Tensor, GgmlType Type, ITensorSource[] Sources, TensorEntry[] Entries,
        int BaseSource, int[] ModelSource, MergeConfig Config, string ParameterName, int ParameterLayers)
    {
        /// <summary>Per source, the token row map of a tokenizer merge (null: read as stored).</summary>
        public RowRemap?[]? Remaps { get; init; }
        /// <summary>Merges this tensor instead of the method (embed_slerp for token rows).</summary>
        public Action<TensorJob>? Override { get; init; }
    }

    /// <summary>The architecture a model declares: GGUF general.architecture, or config.json's architectures[0] / model_type.</summary>
    public static string? ArchitectureOf(ITensorSource s)
    {
        if (s is GgufTensorSource g) return g.File.Architecture;
        if (s is SafetensorsModel st && st.ReadConfig() is { } doc)
            using (doc)
            {
                var root = doc.RootElement;
                if (root.TryGetProperty("architectures", out var a) && a.ValueKind == System.Text.Json.JsonValueKind.Array && a.GetArrayLength() > 0) return a[0].GetString();
                if (root.TryGetProperty("model_type", out var mt)) return mt.GetString();
            }
        return null;
    }

    // mergekit refuses to mix architectures unless --allow-crimes.
    private static void CheckArchitectures(ITensorSource[] sources, bool allowCrimes)
    {
        var arch = sources.Select(ArchitectureOf).ToArray();
        if (allowCrimes || arch.Where(a => a is not null).Distinct().Count() <= 1) return;
        throw new ConfigException("the models have different architectures (" + string.Join(", ", sources.Select((s, i) => $"{Path.GetFileName(s.Path)}: {arch[i] ?? "unknown"}"))
            + "); give allow_crimes: true (or --allow-crimes) to merge them anyway");
    }

    private static string? ChatTemplateOf(ITensorSource s) => s switch
    {
        GgufTensorSource g => g.File.GetString("tokenizer.chat_template"),
        SafetensorsModel st => File.Exists(Path.Combine(st.Folder, "tokenizer_config.json"))
            ? (System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(st.Folder, "tokenizer_config.json"))) as System.Text.Json.Nodes.JsonObject)?["chat_template"] is System.Text.Json.Nodes.JsonValue v && v.TryGetValue<string>(out var t) ? t : null
            : null,
        _ => null,
    };

    /// <summary>
    /// The plan of a <c>slices:</c> config: the template's global tensors (embeddings from the first slice's sources,
    /// the rest from the last slice's), and, where the template's layers were, the output layers slice by slice, each
    /// merged from the same relative layer of the slice's sources. Gradient parameters run over each slice's layers,
    /// as in mergekit. Every missing or mis-shaped input is reported at once.
    /// </summary>
    private static List<PlannedTensor> PlanSlices(MergeConfig config, ITensorSource template,
        ITensorSource[] sources, IReadOnlyList<string> paths, Func<TensorEntry, GgmlType> typeOf)
    {
        var slices = config.Slices!;
        var problems = new List<string>();
        var byPath = paths.Select((p, i) => (p, i)).ToDictionary(x => x.p, x => sources[x.i]);
        ITensorSource Open(string path) => byPath[path];
        var sliceConfigs = Enumerable.Range(0, slices.Count).Select(config.ForSlice).ToArray();
        int firstLayer = template.Tensors.Select(t => TensorNames.LayerIndex(t.Name)).Where(l => l is not null).Select(l => l!.Value).DefaultIfEmpty(-1).Min();
        var layerTensors = template.Tensors.Where(t => TensorNames.LayerIndex(t.Name) == firstLayer).ToList();
        if (firstLayer < 0) problems.Add($"{Path.GetFileName(template.Path)} has no layer tensors (blk.N.* or model.layers.N.*) to slice");
        for (int si = 0; si < slices.Count; si++)
            foreach (var src in slices[si].Sources)
            {
                int count = TensorNames.LayerCount(Open(src.Path).Tensors.Select(t => t.Name));
                if (src.End > count) problems.Add($"slices[{si}]: {Path.GetFileName(src.Path)} has {count} layers, layer_range [{src.Start}, {src.End}) goes past them");
            }
        if (problems.Count > 0) throw new ConfigException("cannot plan the slices: " + string.Join("; ", problems));

        PlannedTensor Make(TensorEntry output, int slice, Func<MergeSliceSource, string> inputName, string parameterName, int parameterLayers)
        {
            var srcs = slices[slice].Sources;
            var tensorSources = srcs.Select(x => Open(x.Path)).ToArray();
            var entries = new TensorEntry[srcs.Count];
            for (int i = 0; i < srcs.Count; i++)
            {
                string name = inputName(srcs[i]);
                var e = tensorSources[i].Find(name);
                if (e is null) problems.Add($"slices[{slice}]: {Path.GetFileName(srcs[i].Path)} lacks {name}");
                else if (!e.SameShape(output)) problems.Add($"slices[{slice}]: {name} is {e.ShapeText} in {Path.GetFileName(srcs[i].Path)} but the output's {output.Name} is {output.ShapeText}");
                entries[i] = e!;
            }
            int baseSource = config.BaseModel is null ? -1 : srcs.ToList().FindIndex(x => x.Path == config.BaseModel);
            return new PlannedTensor(output, typeOf(output), tensorSources, entries, baseSource, Enumerable.Range(0, srcs.Count).ToArray(), sliceConfigs[slice], parameterName, parameterLayers);
        }

        var plan = new List<PlannedTensor>();
        bool layersDone = false;
        foreach (var t in template.Tensors)
        {
            if (TensorNames.LayerIndex(t.Name) is not null)
            {
                if (layersDone) continue;
                layersDone = true;
                int outLayer = 0;
                for (int si = 0; si < slices.Count; si++)
                    for (int j = 0; j < slices[si].Length; j++, outLayer++)
                        foreach (var lt in layerTensors)
                        {
                            var output = lt with { Name = TensorNames.WithLayer(lt.Name, outLayer) };
                            int rel = j;
                            plan.Add(Make(output, si, x => TensorNames.WithLayer(lt.Name, x.Start + rel), TensorNames.WithLayer(lt.Name, rel), slices[si].Length));
                        }
                continue;
            }
            plan.Add(Make(t, TensorNames.IsEmbedding(t.Name) ? 0 : slices.Count - 1, _ => t.Name, t.Name, 1));
        }
        if (problems.Count > 0)
            throw new ModelFileException(template.Path, "these slices cannot be merged: " + string.Join("; ", problems.Take(24)) + (problems.Count > 24 ? $"; and {problems.Count - 24} more" : ""));
        return plan;
    }

    /// <summary>Peak resident set size of this process in bytes (Linux VmHWM), or -1.</summary>
    public static long PeakResident()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                    return long.Parse(line[6..].Trim().Split(' ')[0]) * 1024;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return Environment.WorkingSet > 0 ? Process.GetCurrentProcess().PeakWorkingSet64 : -1;
    }
}
