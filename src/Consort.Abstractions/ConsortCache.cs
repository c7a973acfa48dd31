namespace Consort;

/// <summary>Where Consort caches things (downloads, first-load probe verdicts, merges).</summary>
public static class ConsortCache
{
    /// <summary>Cache root: <c>CONSORT_CACHE</c>, else <c>XDG_CACHE_HOME/consort</c>, else <c>~/.cache/consort</c>.</summary>
    public static string Root =>
        Environment.GetEnvironmentVariable("CONSORT_CACHE") is { Length: > 0 } c ? c :
        Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } x ? x
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "consort");
}
