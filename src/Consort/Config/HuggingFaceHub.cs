using System.Net;
using System.Net.Http.Headers;

namespace Consort.Config;

/// <summary>A file in a Hugging Face repository: <c>hf:owner/repo[@revision]/path/file.gguf</c>.</summary>
public sealed record HuggingFaceReference(string Owner, string Repository, string Revision, string FilePath)
{
    /// <summary>Parses a reference; throws <see cref="ConfigException"/> explaining the form.</summary>
    public static HuggingFaceReference Parse(string reference)
    {
        var body = reference.StartsWith("hf:", StringComparison.OrdinalIgnoreCase) ? reference[3..] : reference;
        var parts = body.Split('/', 3);
        if (parts.Length < 3 || parts.Any(string.IsNullOrWhiteSpace) || parts[2].Split('/').Any(p => p is "" or "." or ".."))
            throw new ConfigException($"'{reference}' is not a valid Hugging Face reference; expected hf:owner/repo/path/file.gguf (optionally hf:owner/repo@revision/path)");
        string repo = parts[1], revision = "main";
        int at = repo.IndexOf('@');
        if (at >= 0) { revision = repo[(at + 1)..]; repo = repo[..at]; }
        if (repo.Length == 0 || revision.Length == 0) throw new ConfigException($"'{reference}': empty repository or revision");
        return new HuggingFaceReference(parts[0], repo, revision, parts[2]);
    }

    /// <summary>Back to the reference form.</summary>
    public override string ToString() => $"hf:{Owner}/{Repository}{(Revision == "main" ? "" : "@" + Revision)}/{FilePath}";
}

/// <summary>
/// Downloads files from Hugging Face (or a mirror at <c>HF_ENDPOINT</c>, as Hugging Face's own tools do)
/// into a local cache, once and resumably (a partial download continues with an HTTP range request).
/// <c>HF_TOKEN</c> is sent as a bearer token; <c>HF_HUB_OFFLINE=1</c> forbids network access.
/// </summary>
public static class HuggingFaceHub
{
    /// <summary>Default host when <c>HF_ENDPOINT</c> is not set.</summary>
    public const string DefaultEndpoint = "https://huggingface.co";

    /// <summary>Cache root: <c>CONSORT_CACHE</c>, else <c>XDG_CACHE_HOME/consort</c>, else <c>~/.cache/consort</c>.</summary>
    public static string CacheRoot => ConsortCache.Root;

    /// <summary>Where a reference lives in the cache.</summary>
    public static string CachePath(HuggingFaceReference r) =>
        Path.Combine(CacheRoot, "hf", r.Owner, r.Repository, r.Revision, r.FilePath.Replace('/', Path.DirectorySeparatorChar));

    /// <summary>The download URL of a reference.</summary>
    public static Uri Url(HuggingFaceReference r)
    {
        var endpoint = (Environment.GetEnvironmentVariable("HF_ENDPOINT") is { Length: > 0 } e ? e : DefaultEndpoint).TrimEnd('/');
        var path = string.Join('/', r.FilePath.Split('/').Select(Uri.EscapeDataString));
        return new Uri($"{endpoint}/{Uri.EscapeDataString(r.Owner)}/{Uri.EscapeDataString(r.Repository)}/resolve/{Uri.EscapeDataString(r.Revision)}/{path}");
    }

    /// <summary>
    /// Returns the cached file, downloading it first when absent. A previous partial download
    /// (<c>.part</c>) is resumed. Failures name the URL and where to put the file by hand.
    /// </summary>
    public static async Task<string> EnsureAsync(HuggingFaceReference r, IProgress<(long Done, long? Total)>? progress = null,
        HttpClient? http = null, CancellationToken cancellationToken = default)
    {
        var target = CachePath(r);
        if (File.Exists(target)) return target;
        var url = Url(r);
        string manual = $"download {url} and put it at {target} (or set HF_ENDPOINT to a reachable mirror)";
        if (Environment.GetEnvironmentVariable("HF_HUB_OFFLINE") is "1" or "true")
            throw new ConsortException($"{r} is not in the cache and HF_HUB_OFFLINE is set: {manual}");
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        var part = target + ".part";
        var ownClient = http is null;
        http ??= new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        try
        {
            for (int attempt = 0; ; attempt++)
            {
                long have = File.Exists(part) ? new FileInfo(part).Length : 0;
                using var request = new HttpRequestMessage(HttpMethod.Get, url);
                if (have > 0) request.Headers.Range = new RangeHeaderValue(have, null);
                if (Environment.GetEnvironmentVariable("HF_TOKEN") is { Length: > 0 } token)
                    request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                HttpResponseMessage response;
                try
                {
                    using var connect = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                    connect.CancelAfter(TimeSpan.FromSeconds(30));
                    response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, connect.Token).ConfigureAwait(false);
                }
                catch (Exception e) when (e is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
                {
                    throw new ConsortException($"cannot download {r}: {e.Message}; {manual}", e);
                }
                using (response)
                {
                    if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable && have > 0 && attempt == 0)
                    {
                        File.Delete(part); // the partial file is stale (e.g. the remote file changed): start over
                        continue;
                    }
                    if (!response.IsSuccessStatusCode)
                        throw new ConsortException($"cannot download {r}: HTTP {(int)response.StatusCode} {response.ReasonPhrase} from {url}" +
                                                   (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden ? " (set HF_TOKEN for gated or private repositories)" : "") +
                                                   $"; {manual}");
                    bool resumed = response.StatusCode == HttpStatusCode.PartialContent;
                    long? total = response.Content.Headers.ContentLength is long len ? len + (resumed ? have : 0) : null;
                    await using (var output = new FileStream(part, resumed ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20, useAsync: true))
                    await using (var input = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false))
                    {
                        var buffer = new byte[1 << 20];
                        long done = resumed ? have : 0;
                        int n;
                        try
                        {
                            while ((n = await input.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
                            {
                                await output.WriteAsync(buffer.AsMemory(0, n), cancellationToken).ConfigureAwait(false);
                                done += n;
                                progress?.Report((done, total));
                            }
                        }
                        catch (Exception e) when (e is IOException or HttpRequestException && !cancellationToken.IsCancellationRequested)
                        {
                            throw new ConsortException($"download of {r} was interrupted after {done} bytes ({e.Message}); run again to resume, or {manual}", e);
                        }
                        if (total is long t && done != t)
                            throw new ConsortException($"download of {r} ended after {done} of {t} bytes; run again to resume, or {manual}");
                    }
                    File.Move(part, target, overwrite: true);
                    return target;
                }
            }
        }
        finally
        {
            if (ownClient) http.Dispose();
        }
    }
}
