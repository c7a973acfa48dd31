using LLama.Native;

namespace Consort.LlamaCpp;

/// <summary>One-time native set-up: load the library early and silence llama.cpp's logging.</summary>
public static class LlamaNative
{
    private static readonly object Gate = new();
    private static bool _ready;

    /// <summary>Idempotent; call before touching any LLamaSharp parameter type.</summary>
    public static void EnsureInitialized()
    {
        if (_ready) return;
        lock (Gate)
        {
            if (_ready) return;
            // Without the empty call first, LLamaModelParams can throw DllNotFoundException (see notes).
            NativeApi.llama_empty_call();
            // Native logging would write model-load chatter to stderr of every CLI command.
            NativeLogConfig.llama_log_set((LLamaLogLevel _, string _) => { });
            _ready = true;
        }
    }
}
