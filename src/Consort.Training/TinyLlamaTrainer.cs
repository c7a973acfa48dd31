using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Consort.Formats.Gguf;
using Consort.Training.Native;
using Consort.Weights.Lora;

namespace Consort.Training;

/// <summary>One training or evaluation batch: <c>Batch</c> windows of <c>SeqLen</c> tokens, flattened window-major.</summary>
/// <param name="Inputs">Input token ids.</param>
/// <param name="Targets">Next-token ids (same length).</param>
/// <param name="Mask">1 where the target counts in the loss, 0 where it is masked (e.g. the prompt of a pair).</param>
public sealed record TrainingBatch(int[] Inputs, int[] Targets, float[] Mask);

/// <summary>AdamW settings and the learning-rate schedule (linear warm-up, then cosine decay to a floor).</summary>
public sealed record OptimizerSettings
{
    /// <summary>Peak learning rate.</summary>
    public float LearningRate { get; init; } = 2e-3f;
    /// <summary>Warm-up steps.</summary>
    public int WarmupSteps { get; init; } = 30;
    /// <summary>Final learning rate as a fraction of the peak.</summary>
    public float MinLrRatio { get; init; } = 0.1f;
    /// <summary>AdamW weight decay (decoupled).</summary>
    public float WeightDecay { get; init; }
    /// <summary>AdamW beta1.</summary>
    public float Beta1 { get; init; } = 0.9f;
    /// <summary>AdamW beta2.</summary>
    public float Beta2 { get; init; } = 0.99f;

    /// <summary>Learning rate at <paramref name="step"/> of <paramref name="total"/>.</summary>
    public float LearningRateAt(int step, int total)
    {
        if (step < WarmupSteps) return LearningRate * (step + 1) / WarmupSteps;
        double t = total <= WarmupSteps ? 1 : (double)(step - WarmupSteps) / Math.Max(1, total - WarmupSteps);
        double cos = 0.5 * (1 + Math.Cos(Math.PI * Math.Min(1, t)));
        return (float)(LearningRate * (MinLrRatio + (1 - MinLrRatio) * cos));
    }
}

/// <summary>
/// Trains a tiny LLaMA with ggml's optimizer (AdamW) over a hand-built forward graph that matches llama.cpp's llama
/// architecture. Full mode trains every parameter in F32; LoRA mode (<see cref="LoraSettings"/>) freezes the weights and
/// trains only low-rank A/B pairs on the target matrices. Loss masking zeroes the masked positions' logits inside the graph
/// (ggml's cross-entropy needs one-hot label rows), and the reported loss removes those rows' constant ln(V) share.
/// Not thread-safe; one instance per model.
/// </summary>
public sealed unsafe class TinyLlamaTrainer : IDisposable
{
    private readonly IntPtr _backend, _ctxStatic, _ctxCompute, _buffer, _sched;
    private readonly IntPtr _tokens, _positions, _mask, _logits;
    private readonly Dictionary<string, IntPtr> _weights = new(StringComparer.Ordinal);
    private readonly List<string> _order = [];
    private readonly List<LoraPairTensors> _lora = [];
    private readonly Dictionary<string, LoraPairTensors> _loraByTarget = new(StringComparer.Ordinal);
    private IntPtr _opt;
    private GCHandle _self;
    private GgmlOptimizerParams _current;
    private bool _disposed;

    /// <summary>One adapted matrix: A {n_in, r} and B {r, n_out} in ggml order (A [r, in], B [out, r] row-major).</summary>
    private sealed record LoraPairTensors(string Target, IntPtr A, IntPtr B, int In, int Out);

    /// <summary>
    /// Creates the graph for <paramref name="batch"/> windows of <paramref name="seqLen"/> tokens (weights uninitialized).
    /// With <paramref name="lora"/>, the weights are frozen and only the LoRA pairs train (A random from its seed, B zero).
    /// </summary>
    public TinyLlamaTrainer(TinyLlamaConfig config, int batch, int seqLen, int threads, LoraSettings? lora = null)
    {
        config.Validate();
        lora?.Validate();
        if (batch <= 0 || seqLen <= 1) throw new ConsortException("trainer: batch must be positive and sequence length at least 2");
        if (seqLen > config.Context) throw new ConsortException($"trainer: sequence length {seqLen} exceeds the model context {config.Context}");
        Ggml.EnsureInitialized();
        Config = config; Batch = batch; SeqLen = seqLen; Lora = lora;
        int n = batch * seqLen;

        _backend = Ggml.ggml_backend_cpu_init();
        Ggml.ggml_backend_cpu_set_n_threads(_backend, Math.Max(1, threads));

        var shapes = config.Tensors().ToList();
        _ctxStatic = Ggml.ggml_init(new GgmlInitParams { MemSize = Ggml.ggml_tensor_overhead() * (nuint)(3 * shapes.Count + 16), NoAlloc = 1 });
        foreach (var (name, dims) in shapes)
        {
            var t = dims.Length == 1 ? Ggml.ggml_new_tensor_1d(_ctxStatic, Ggml.TypeF32, dims[0]) : Ggml.ggml_new_tensor_2d(_ctxStatic, Ggml.TypeF32, dims[0], dims[1]);
            Ggml.ggml_set_name(t, name);
            // LoRA: the weights are plain inputs of the graph, so ggml computes no gradient or optimizer state for them.
            if (lora is null) Ggml.ggml_set_param(t);
            _weights[name] = t; _order.Add(name);
        }
        if (lora is not null)
        {
            foreach (var (name, dims) in shapes)
            {
                if (!IsLoraTarget(name, lora)) continue;
                int nIn = (int)dims[0], nOut = (int)dims[1];
                var a = Ggml.ggml_new_tensor_2d(_ctxStatic, Ggml.TypeF32, nIn, lora.Rank);
                var b = Ggml.ggml_new_tensor_2d(_ctxStatic, Ggml.TypeF32, lora.Rank, nOut);
                Ggml.ggml_set_name(a, name + ".lora_a"); Ggml.ggml_set_name(b, name + ".lora_b");
                Ggml.ggml_set_param(a); Ggml.ggml_set_param(b);
                var pair = new LoraPairTensors(name, a, b, nIn, nOut);
                _lora.Add(pair); _loraByTarget[name] = pair;
            }
        }
        _tokens = Ggml.ggml_new_tensor_2d(_ctxStatic, Ggml.TypeI32, seqLen, batch);
        _positions = Ggml.ggml_new_tensor_1d(_ctxStatic, Ggml.TypeI32, seqLen);
        _mask = Ggml.ggml_new_tensor_2d(_ctxStatic, Ggml.TypeF32, 1, n);
        Ggml.ggml_set_input(_tokens); Ggml.ggml_set_input(_positions); Ggml.ggml_set_input(_mask);
        _buffer = Ggml.ggml_backend_alloc_ctx_tensors(_ctxStatic, _backend);
        if (_buffer == IntPtr.Zero) throw new ConsortException("trainer: could not allocate weight buffer");
        Ggml.Set(_positions, Enumerable.Range(0, seqLen).ToArray());
        if (lora is not null) InitializeLora(lora.Seed);

        // Metadata only: ggml_opt also puts gradients and optimizer graphs here.
        _ctxCompute = Ggml.ggml_init(new GgmlInitParams { MemSize = Ggml.ggml_tensor_overhead() * 32768 + Ggml.ggml_graph_overhead() * 8 + (1 << 20), NoAlloc = 1 });
        _logits = BuildForward();
        var backend = _backend;
        _sched = Ggml.ggml_backend_sched_new(&backend, null, 1, 16384, false, true);
    }

    /// <summary>Model shape.</summary>
    public TinyLlamaConfig Config { get; }
    /// <summary>Windows per batch.</summary>
    public int Batch { get; }
    /// <summary>Tokens per window.</summary>
    public int SeqLen { get; }
    /// <summary>Optimizer steps taken.</summary>
    public int Step { get; private set; }
    /// <summary>Current optimizer settings (read by ggml before each optimizer step).</summary>
    public OptimizerSettings Optimizer { get; set; } = new();
    /// <summary>Total steps planned (for the cosine schedule).</summary>
    public int TotalSteps { get; set; } = 1000;
    /// <summary>LoRA settings, or null when every weight trains.</summary>
    public LoraSettings? Lora { get; }
    /// <summary>Parameters AdamW updates: every weight, or in LoRA mode r·(n_in + n_out) per adapted matrix.</summary>
    public long TrainableParameterCount => Lora is null ? Config.ParameterCount : _lora.Sum(p => (long)Lora.Rank * (p.In + p.Out));

    private static bool IsLoraTarget(string tensor, LoraSettings lora) =>
        tensor.StartsWith("blk.", StringComparison.Ordinal) && tensor.EndsWith(".weight", StringComparison.Ordinal)
        && lora.Targets.Contains(tensor[(tensor.IndexOf('.', 4) + 1)..^".weight".Length]);

    /// <summary>W x, plus (alpha/r)·B (A x) when W carries a LoRA pair (the same ops and order as llama.cpp's build_lora_mm).</summary>
    private IntPtr MatMul(string name, IntPtr x)
    {
        var c = _ctxCompute;
        var y = Ggml.ggml_mul_mat(c, _weights[name], x);
        if (!_loraByTarget.TryGetValue(name, out var p)) return y;
        var ab = Ggml.ggml_mul_mat(c, p.B, Ggml.ggml_mul_mat(c, p.A, x));
        return Ggml.ggml_add(c, y, Ggml.ggml_scale(c, ab, Lora!.Scale));
    }

    private IntPtr BuildForward()
    {
        var c = _ctxCompute;
        var cfg = Config;
        int n = Batch * SeqLen, hd = cfg.HeadDim, h = cfg.Heads;
        float scale = 1f / MathF.Sqrt(hd);
        IntPtr W(string name) => _weights[name];

        var x = Ggml.ggml_get_rows(c, W("token_embd.weight"), Ggml.ggml_reshape_1d(c, _tokens, n));
        for (int l = 0; l < cfg.Layers; l++)
        {
            var a = Ggml.ggml_mul(c, Ggml.ggml_rms_norm(c, x, cfg.RmsEps), W($"blk.{l}.attn_norm.weight"));
            var q = Ggml.ggml_reshape_4d(c, MatMul($"blk.{l}.attn_q.weight", a), hd, h, SeqLen, Batch);
            var k = Ggml.ggml_reshape_4d(c, MatMul($"blk.{l}.attn_k.weight", a), hd, h, SeqLen, Batch);
            var v = Ggml.ggml_reshape_4d(c, MatMul($"blk.{l}.attn_v.weight", a), hd, h, SeqLen, Batch);
            // Mode 0 is llama.cpp's LLAMA rope ("norm"): the layout llama.cpp uses when it runs the saved file.
            q = Ggml.ggml_rope_ext(c, q, _positions, IntPtr.Zero, hd, 0, cfg.Context, cfg.RopeBase, 1f, 0f, 1f, 0f, 0f);
            k = Ggml.ggml_rope_ext(c, k, _positions, IntPtr.Zero, hd, 0, cfg.Context, cfg.RopeBase, 1f, 0f, 1f, 0f, 0f);
            var qp = Ggml.ggml_cont(c, Ggml.ggml_permute(c, q, 0, 2, 1, 3));          // [hd, T, H, B]
            var kp = Ggml.ggml_cont(c, Ggml.ggml_permute(c, k, 0, 2, 1, 3));          // [hd, T, H, B]
            var kq = Ggml.ggml_mul_mat(c, kp, qp);                                     // [Tk, Tq, H, B]
            kq = Ggml.ggml_soft_max_ext(c, Ggml.ggml_diag_mask_inf(c, kq, 0), IntPtr.Zero, scale, 0f);
            var vt = Ggml.ggml_cont(c, Ggml.ggml_permute(c, v, 1, 2, 0, 3));          // [T, hd, H, B]
            var o = Ggml.ggml_mul_mat(c, vt, kq);                                      // [hd, Tq, H, B]
            o = Ggml.ggml_reshape_2d(c, Ggml.ggml_cont(c, Ggml.ggml_permute(c, o, 0, 2, 1, 3)), cfg.Dim, n);
            x = Ggml.ggml_add(c, x, MatMul($"blk.{l}.attn_output.weight", o));

            var f = Ggml.ggml_mul(c, Ggml.ggml_rms_norm(c, x, cfg.RmsEps), W($"blk.{l}.ffn_norm.weight"));
            var g = Ggml.ggml_silu(c, MatMul($"blk.{l}.ffn_gate.weight", f));
            var u = MatMul($"blk.{l}.ffn_up.weight", f);
            x = Ggml.ggml_add(c, x, MatMul($"blk.{l}.ffn_down.weight", Ggml.ggml_mul(c, g, u)));
        }
        var outN = Ggml.ggml_mul(c, Ggml.ggml_rms_norm(c, x, cfg.RmsEps), W("output_norm.weight"));
        var logits = Ggml.ggml_mul_mat(c, W("output.weight"), outN);                  // [V, N]
        logits = Ggml.ggml_mul(c, logits, _mask);                                       // masked rows become uniform
        Ggml.ggml_set_name(logits, "logits");
        Ggml.ggml_set_output(logits);
        return logits;
    }

    private void EnsureOpt()
    {
        if (_opt != IntPtr.Zero) return;
        _self = GCHandle.Alloc(this);
        var p = new GgmlOptParams
        {
            BackendSched = _sched, CtxCompute = _ctxCompute, Inputs = _tokens, Outputs = _logits,
            LossType = Ggml.LossCrossEntropy, BuildType = Ggml.BuildTypeOpt, OptPeriod = 1,
            GetOptPars = (IntPtr)(delegate* unmanaged[Cdecl]<IntPtr, GgmlOptimizerParams>)&GetParams,
            GetOptParsUd = GCHandle.ToIntPtr(_self), Optimizer = Ggml.OptimizerAdamW,
        };
        _opt = Ggml.ggml_opt_init(p);
        if (_opt == IntPtr.Zero) throw new ConsortException("trainer: ggml_opt_init failed");
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static GgmlOptimizerParams GetParams(IntPtr ud) => ((TinyLlamaTrainer)GCHandle.FromIntPtr(ud).Target!)._current;

    /// <summary>Random initialization (normal, std 0.02; residual projections scaled down; norms 1), deterministic for a seed.</summary>
    public void InitializeRandom(int seed)
    {
        var rng = new Random(seed);
        float resid = 0.02f / MathF.Sqrt(2 * Config.Layers);
        foreach (var (name, dims) in Config.Tensors())
        {
            long count = dims.Aggregate(1L, (a, b) => a * b);
            var data = new float[count];
            if (dims.Length == 1) Array.Fill(data, 1f);
            else
            {
                float std = name.EndsWith("attn_output.weight") || name.EndsWith("ffn_down.weight") ? resid : 0.02f;
                for (int i = 0; i < data.Length; i++)
                {
                    double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble();
                    data[i] = (float)(std * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
                }
            }
            Ggml.Set(_weights[name], data);
        }
    }

    /// <summary>
    /// Re-initializes the LoRA pairs: A uniform in ±1/sqrt(n_in) (PEFT's Kaiming bound), B zero, so the adapted model
    /// starts equal to the base. Deterministic for a seed.
    /// </summary>
    public void InitializeLora(int seed)
    {
        if (Lora is null) throw new InvalidOperationException("trainer: not in LoRA mode");
        var rng = new Random(seed);
        foreach (var p in _lora)
        {
            float bound = 1f / MathF.Sqrt(p.In);
            var a = new float[(long)p.In * Lora.Rank];
            for (int i = 0; i < a.Length; i++) a[i] = (float)((rng.NextDouble() * 2 - 1) * bound);
            Ggml.Set(p.A, a);
            Ggml.Set(p.B, new float[(long)Lora.Rank * p.Out]);
        }
    }

    /// <summary>Loads every weight from a GGUF of the same shape (any tensor type the reader decodes).</summary>
    public void LoadGguf(string path)
    {
        using var f = GgufFile.Open(path);
        var cfg = TinyLlamaConfig.FromGguf(f);
        if (cfg with { Context = Config.Context } != Config)
            throw new ModelFileException(path, $"model shape {cfg} does not match the trainer's {Config}");
        foreach (var (name, dims) in Config.Tensors())
        {
            var info = f.FindTensor(name) ?? throw new ModelFileException(path, $"tensor {name} missing");
            if (info.ElementCount != dims.Aggregate(1L, (a, b) => a * b)) throw new ModelFileException(path, $"tensor {name} has {info.ElementCount} elements, expected [{string.Join(", ", dims)}]");
            Ggml.Set(_weights[name], f.ReadFloat32(info));
        }
    }

    /// <summary>A copy of every weight (GGUF name to F32 values); in LoRA mode the frozen base weights.</summary>
    public Dictionary<string, float[]> GetWeights() => _order.ToDictionary(n => n, n => Ggml.Get(_weights[n]));

    /// <summary>The LoRA updates as they are now (A [r, in], B [out, r] row-major, GGUF target names).</summary>
    public IReadOnlyList<LoraUpdate> GetLoraUpdates()
    {
        if (Lora is null) throw new InvalidOperationException("trainer: not in LoRA mode");
        return _lora.Select(p => new LoraUpdate(p.Target, Ggml.Get(p.A), Ggml.Get(p.B), Lora.Rank, p.In, p.Out)).ToList();
    }

    /// <summary>The weights the model computes with: the base plus (alpha/r)·B·A on every adapted matrix (just the weights in full mode).</summary>
    public Dictionary<string, float[]> GetMergedWeights()
    {
        var w = GetWeights();
        if (Lora is null) return w;
        foreach (var u in GetLoraUpdates())
            LoraMerger.AddProduct(w[u.Target], u.B, u.A, u.Out, u.Rank, u.In, Lora.Scale);
        return w;
    }

    /// <summary>Writes the LoRA pairs as a llama.cpp GGUF adapter (X.weight.lora_a {n_in, r}, .lora_b {r, n_out}, adapter.lora.alpha).</summary>
    public void SaveLoraAdapter(string path)
    {
        if (Lora is null) throw new InvalidOperationException("trainer: SaveLoraAdapter needs LoRA mode");
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        LoraWriter.WriteGguf(path, GetLoraUpdates(), Lora.Alpha, "llama");
    }

    /// <summary>One AdamW step on <paramref name="batch"/>; returns the loss over unmasked targets (nats/token).</summary>
    public float TrainStep(TrainingBatch batch)
    {
        EnsureOpt();
        var o = Optimizer;
        _current = new GgmlOptimizerParams
        {
            AdamAlpha = o.LearningRateAt(Step, TotalSteps), AdamBeta1 = o.Beta1, AdamBeta2 = o.Beta2, AdamEps = 1e-8f,
            // ggml applies wd as a multiplier of alpha (decoupled AdamW).
            AdamWd = o.WeightDecay, SgdAlpha = 1e-3f, SgdWd = 0f,
        };
        Ggml.ggml_opt_alloc(_opt, true);
        float loss = Run(batch);
        Step++;
        return loss;
    }

    /// <summary>Forward pass only: the loss over unmasked targets (nats/token).</summary>
    public float EvalLoss(TrainingBatch batch)
    {
        EnsureOpt();
        Ggml.ggml_opt_alloc(_opt, false);
        return Run(batch);
    }

    private float Run(TrainingBatch b)
    {
        int n = Batch * SeqLen, v = Config.Vocab;
        if (b.Inputs.Length != n || b.Targets.Length != n || b.Mask.Length != n)
            throw new ArgumentException($"batch must hold {Batch}x{SeqLen} tokens");
        int masked = 0;
        var labels = new float[(long)n * v];
        for (int i = 0; i < n; i++)
        {
            int t = b.Targets[i], x = b.Inputs[i];
            if ((uint)t >= (uint)v || (uint)x >= (uint)v) throw new ArgumentException($"token id out of range at {i}");
            labels[(long)i * v + t] = 1f;
            if (b.Mask[i] == 0) masked++;
        }
        if (masked == n) throw new ArgumentException("batch has no unmasked targets");
        Ggml.Set(_tokens, b.Inputs);
        Ggml.Set(_mask, b.Mask);
        Ggml.Set(Ggml.ggml_opt_labels(_opt), labels);
        Ggml.ggml_opt_eval(_opt, IntPtr.Zero);
        float mean = Ggml.Get(Ggml.ggml_opt_loss(_opt))[0];
        // Masked rows have all-zero logits: each contributes exactly ln(V) to ggml's mean over rows.
        return (float)((mean * (double)n - masked * Math.Log(v)) / (n - masked));
    }

    /// <summary>
    /// Writes the weights as a llama GGUF that llama.cpp loads (2-D tensors in <paramref name="type"/>, norms F32);
    /// in LoRA mode the merged model (base + (alpha/r)·B·A).
    /// </summary>
    public void SaveGguf(string path, string name, GgmlType type = GgmlType.F32, IReadOnlyDictionary<string, GgufValue>? extra = null)
    {
        if (type is not (GgmlType.F32 or GgmlType.F16)) throw new ConsortException("trainer: GGUF output type must be F32 or F16");
        GgufModelWriter.Write(path, Config, name, type, GetMergedWeights(), extra);
    }

    /// <summary>Writes what training resumes from: the F32 model in full mode, the adapter in LoRA mode.</summary>
    public void SaveCheckpoint(string path, string name)
    {
        if (Lora is null) SaveGguf(path, name, GgmlType.F32);
        else SaveLoraAdapter(path);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_opt != IntPtr.Zero) Ggml.ggml_opt_free(_opt);
        if (_self.IsAllocated) _self.Free();
        Ggml.ggml_backend_sched_free(_sched);
        Ggml.ggml_backend_buffer_free(_buffer);
        Ggml.ggml_free(_ctxCompute);
        Ggml.ggml_free(_ctxStatic);
        Ggml.ggml_backend_free(_backend);
    }
}
