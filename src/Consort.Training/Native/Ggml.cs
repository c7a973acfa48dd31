using System.Reflection;
using System.Runtime.InteropServices;
using Consort;
using LLama.Native;

namespace Consort.Training.Native;

/// <summary>ggml's init parameters (passed by value).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct GgmlInitParams
{
    public nuint MemSize;
    public IntPtr MemBuffer;
    public byte NoAlloc;
}

/// <summary>
/// ggml_opt_optimizer_params as built into llama.cpp c0c7e147 (LLamaSharp.Backend.Cpu 0.30.0): 7 floats.
/// Newer headers add a gradient-clip field, so <see cref="Ggml.SelfTest"/> checks this layout at start-up.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
internal struct GgmlOptimizerParams
{
    public float AdamAlpha, AdamBeta1, AdamBeta2, AdamEps, AdamWd;
    public float SgdAlpha, SgdWd;
}

/// <summary>ggml_opt_params at c0c7e147: 72 bytes (checked against ggml_opt_default_params' layout).</summary>
[StructLayout(LayoutKind.Sequential)]
internal struct GgmlOptParams
{
    public IntPtr BackendSched;
    public IntPtr CtxCompute;
    public IntPtr Inputs;
    public IntPtr Outputs;
    public int LossType;
    public int BuildType;
    public int OptPeriod;
    public IntPtr GetOptPars;
    public IntPtr GetOptParsUd;
    public int Optimizer;
}

/// <summary>
/// P/Invoke into the ggml libraries that LLamaSharp.Backend.Cpu 0.30.0 ships (libggml-base, libggml-cpu).
/// Only the functions the trainer needs; signatures from ggml.h / ggml-opt.h / ggml-backend.h at llama.cpp c0c7e147.
/// </summary>
internal static unsafe partial class Ggml
{
    private const string Base = "ggml-base";
    private const string Cpu = "ggml-cpu";

    public const int TypeF32 = 0;
    public const int TypeI32 = 26;
    public const int LossCrossEntropy = 2;
    public const int BuildTypeOpt = 30;
    public const int OptimizerAdamW = 0;

    private static readonly object Gate = new();
    private static string? _baseLib, _cpuLib;
    private static bool _ready;

    /// <summary>Loads the native libraries (the same copies llama.cpp uses) and runs the ABI self-test once.</summary>
    public static void EnsureInitialized()
    {
        if (_ready) return;
        lock (Gate)
        {
            if (_ready) return;
            // Same set-up as inference (library loaded, logging silenced): the ggml libraries found below are llama.cpp's.
            Consort.LlamaCpp.LlamaNative.EnsureInitialized();
            (_baseLib, _cpuLib) = FindLibraries();
            NativeLibrary.SetDllImportResolver(typeof(Ggml).Assembly, Resolve);
            SelfTest();
            _ready = true;
        }
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path) => name switch
    {
        Base => NativeLibrary.Load(_baseLib!),
        Cpu => NativeLibrary.Load(_cpuLib!),
        _ => IntPtr.Zero,
    };

    private static (string, string) FindLibraries()
    {
        // Prefer the copies llama.cpp already loaded (one ggml per process); fall back to the output folder.
        string? b = null, c = null;
        try
        {
            foreach (var line in File.ReadLines("/proc/self/maps"))
            {
                int slash = line.IndexOf('/');
                if (slash < 0) continue;
                var p = line[slash..].Trim();
                if (p.EndsWith("/libggml-base.so", StringComparison.Ordinal)) b ??= p;
                else if (p.EndsWith("/libggml-cpu.so", StringComparison.Ordinal)) c ??= p;
            }
        }
        catch (IOException) { }
        if (b is not null && c is not null) return (b, c);
        foreach (var variant in new[] { "avx2", "avx512", "avx", "noavx", "" })
        {
            var dir = Path.Combine(AppContext.BaseDirectory, "runtimes", "linux-x64", "native", variant);
            if (File.Exists(Path.Combine(dir, "libggml-base.so")) && File.Exists(Path.Combine(dir, "libggml-cpu.so")))
                return (Path.Combine(dir, "libggml-base.so"), Path.Combine(dir, "libggml-cpu.so"));
        }
        throw new ConsortException("trainer: ggml native libraries (libggml-base.so, libggml-cpu.so from LLamaSharp.Backend.Cpu 0.30.0) not found");
    }

    /// <summary>Checks the struct layouts this binding assumes against the loaded library's defaults.</summary>
    private static void SelfTest()
    {
        // Read the defaults into an oversized buffer: a newer struct (more fields) would shift the SGD values.
        var buf = stackalloc float[16];
        get_default_optimizer_params_raw(buf, IntPtr.Zero);
        bool ok = Math.Abs(buf[0] - 1e-3f) < 1e-9 && Math.Abs(buf[1] - 0.9f) < 1e-6 && Math.Abs(buf[2] - 0.999f) < 1e-6
                  && Math.Abs(buf[3] - 1e-8f) < 1e-12 && buf[4] == 0f && Math.Abs(buf[5] - 1e-3f) < 1e-9 && buf[6] == 0f;
        if (!ok)
            throw new ConsortException("trainer: ggml ABI self-test failed (ggml_opt_optimizer_params is not the 7-float layout of llama.cpp c0c7e147); pin LLamaSharp.Backend.Cpu 0.30.0");
        var p = stackalloc byte[128];
        new Span<byte>(p, 128).Fill(0xAB);
        ggml_opt_default_params_raw(p, (IntPtr)0x1234, LossCrossEntropy);
        var s = (GgmlOptParams*)p;
        if (s->BackendSched != 0x1234 || s->LossType != LossCrossEntropy || s->BuildType != BuildTypeOpt || s->OptPeriod != 1 || s->GetOptPars == 0 || p[72] != 0xAB)
            throw new ConsortException("trainer: ggml ABI self-test failed (ggml_opt_params layout differs from llama.cpp c0c7e147)");
        if (sizeof(GgmlOptParams) != 72 || sizeof(GgmlOptimizerParams) != 28)
            throw new ConsortException("trainer: ggml binding struct sizes are wrong");
    }

    [LibraryImport(Base, EntryPoint = "ggml_opt_get_default_optimizer_params")]
    private static partial void get_default_optimizer_params_raw_impl(float* sret, IntPtr ud);
    // A struct larger than 16 bytes comes back through a hidden first pointer (SysV x64), which lets us over-allocate.
    private static void get_default_optimizer_params_raw(float* sret, IntPtr ud) => get_default_optimizer_params_raw_impl(sret, ud);

    [LibraryImport(Base, EntryPoint = "ggml_opt_default_params")]
    private static partial void ggml_opt_default_params_raw(byte* sret, IntPtr sched, int lossType);

    // ---- core ----
    [LibraryImport(Base)] public static partial IntPtr ggml_init(GgmlInitParams p);
    [LibraryImport(Base)] public static partial void ggml_free(IntPtr ctx);
    [LibraryImport(Base)] public static partial nuint ggml_tensor_overhead();
    [LibraryImport(Base)] public static partial nuint ggml_graph_overhead();
    [LibraryImport(Base)] public static partial IntPtr ggml_new_tensor_1d(IntPtr ctx, int type, long ne0);
    [LibraryImport(Base)] public static partial IntPtr ggml_new_tensor_2d(IntPtr ctx, int type, long ne0, long ne1);
    [LibraryImport(Base, StringMarshalling = StringMarshalling.Utf8)] public static partial IntPtr ggml_set_name(IntPtr t, string name);
    [LibraryImport(Base)] public static partial void ggml_set_param(IntPtr t);
    [LibraryImport(Base)] public static partial void ggml_set_input(IntPtr t);
    [LibraryImport(Base)] public static partial void ggml_set_output(IntPtr t);
    [LibraryImport(Base)] public static partial nuint ggml_nbytes(IntPtr t);
    [LibraryImport(Base)] public static partial long ggml_nelements(IntPtr t);

    // ---- ops ----
    [LibraryImport(Base)] public static partial IntPtr ggml_get_rows(IntPtr ctx, IntPtr a, IntPtr b);
    [LibraryImport(Base)] public static partial IntPtr ggml_rms_norm(IntPtr ctx, IntPtr a, float eps);
    [LibraryImport(Base)] public static partial IntPtr ggml_mul(IntPtr ctx, IntPtr a, IntPtr b);
    [LibraryImport(Base)] public static partial IntPtr ggml_add(IntPtr ctx, IntPtr a, IntPtr b);
    [LibraryImport(Base)] public static partial IntPtr ggml_mul_mat(IntPtr ctx, IntPtr a, IntPtr b);
    [LibraryImport(Base)] public static partial IntPtr ggml_silu(IntPtr ctx, IntPtr a);
    [LibraryImport(Base)] public static partial IntPtr ggml_scale(IntPtr ctx, IntPtr a, float s);
    [LibraryImport(Base)] public static partial IntPtr ggml_cont(IntPtr ctx, IntPtr a);
    [LibraryImport(Base)] public static partial IntPtr ggml_reshape_1d(IntPtr ctx, IntPtr a, long ne0);
    [LibraryImport(Base)] public static partial IntPtr ggml_reshape_2d(IntPtr ctx, IntPtr a, long ne0, long ne1);
    [LibraryImport(Base)] public static partial IntPtr ggml_reshape_4d(IntPtr ctx, IntPtr a, long ne0, long ne1, long ne2, long ne3);
    [LibraryImport(Base)] public static partial IntPtr ggml_permute(IntPtr ctx, IntPtr a, int ax0, int ax1, int ax2, int ax3);
    [LibraryImport(Base)] public static partial IntPtr ggml_diag_mask_inf(IntPtr ctx, IntPtr a, int nPast);
    [LibraryImport(Base)] public static partial IntPtr ggml_soft_max_ext(IntPtr ctx, IntPtr a, IntPtr mask, float scale, float maxBias);
    [LibraryImport(Base)]
    public static partial IntPtr ggml_rope_ext(IntPtr ctx, IntPtr a, IntPtr pos, IntPtr freqFactors, int nDims, int mode, int nCtxOrig,
        float freqBase, float freqScale, float extFactor, float attnFactor, float betaFast, float betaSlow);

    // ---- backend ----
    [LibraryImport(Cpu)] public static partial IntPtr ggml_backend_cpu_init();
    [LibraryImport(Cpu)] public static partial void ggml_backend_cpu_set_n_threads(IntPtr backend, int n);
    [LibraryImport(Base)] public static partial void ggml_backend_free(IntPtr backend);
    [LibraryImport(Base)] public static partial IntPtr ggml_backend_alloc_ctx_tensors(IntPtr ctx, IntPtr backend);
    [LibraryImport(Base)] public static partial void ggml_backend_buffer_free(IntPtr buffer);
    [LibraryImport(Base)] public static partial void ggml_backend_tensor_set(IntPtr t, void* data, nuint offset, nuint size);
    [LibraryImport(Base)] public static partial void ggml_backend_tensor_get(IntPtr t, void* data, nuint offset, nuint size);
    [LibraryImport(Base)]
    public static partial IntPtr ggml_backend_sched_new(IntPtr* backends, IntPtr* bufts, int n, nuint graphSize,
        [MarshalAs(UnmanagedType.U1)] bool parallel, [MarshalAs(UnmanagedType.U1)] bool opOffload);
    [LibraryImport(Base)] public static partial void ggml_backend_sched_free(IntPtr sched);

    // ---- opt ----
    [LibraryImport(Base)] public static partial IntPtr ggml_opt_init(GgmlOptParams p);
    [LibraryImport(Base)] public static partial void ggml_opt_free(IntPtr opt);
    [LibraryImport(Base)] public static partial void ggml_opt_alloc(IntPtr opt, [MarshalAs(UnmanagedType.U1)] bool backward);
    [LibraryImport(Base)] public static partial void ggml_opt_eval(IntPtr opt, IntPtr result);
    [LibraryImport(Base)] public static partial IntPtr ggml_opt_labels(IntPtr opt);
    [LibraryImport(Base)] public static partial IntPtr ggml_opt_loss(IntPtr opt);

    /// <summary>Copies managed floats into a backend tensor (sizes checked).</summary>
    public static void Set(IntPtr t, ReadOnlySpan<float> data)
    {
        if ((nuint)(data.Length * 4) != ggml_nbytes(t)) throw new InvalidOperationException("tensor size mismatch");
        fixed (float* p = data) ggml_backend_tensor_set(t, p, 0, (nuint)(data.Length * 4));
    }

    /// <summary>Copies managed ints into a backend I32 tensor (sizes checked).</summary>
    public static void Set(IntPtr t, ReadOnlySpan<int> data)
    {
        if ((nuint)(data.Length * 4) != ggml_nbytes(t)) throw new InvalidOperationException("tensor size mismatch");
        fixed (int* p = data) ggml_backend_tensor_set(t, p, 0, (nuint)(data.Length * 4));
    }

    /// <summary>Reads a backend F32 tensor.</summary>
    public static float[] Get(IntPtr t)
    {
        var r = new float[(int)(ggml_nbytes(t) / 4)];
        fixed (float* p = r) ggml_backend_tensor_get(t, p, 0, (nuint)(r.Length * 4));
        return r;
    }
}
